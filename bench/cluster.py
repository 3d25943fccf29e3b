"""@task.carbon on a real Celery cluster: per-task overhead, and how soon a finished task's record is visible.

Starts the cluster of tests/test_cluster.py (carbon_testing.cluster: PostgreSQL, Redis, api-server, scheduler,
dag-processor, a default and a gpu Celery worker; the gpu one with the simulated GPU) serving
bench/dags_cluster/cluster_bench_dags.py: N mapped tasks sleeping WORK_S seconds each, as plain @task and
as @task.carbon, both on queue gpu (the same worker, the same concurrency). After one warm-up run of each
DAG, runs them alternately ROUNDS times and reports, from Airflow's own task instance dates:

- wall time per task (TI end_date - start_date) and per run (DAG run end_date - start_date), and the
  ratio tracked/untracked; the time added per task (the difference of the task medians) with its 95 %
  bootstrap interval, each DAG's tasks resampled, and the goal judged on it (bench/stats.py);
- record latency: for each tracked task, the time from its TI end_date to when its record is visible in
  the UI's run JSON (GET /carbon/api/dags/{dag}/runs/{run}, polled every POLL_S), or, where the UI is not
  served, in the REST API's XCom list (carbon_records entries); and the XCom's own write timestamp minus
  the TI end_date. Negative: visible before Airflow marked the task instance finished (a task pushes its
  records from inside its try, before the worker reports the try's end).

Both DAGs are polled the same way while they run, so the polling load is the same for both.
``python bench/cluster.py`` prints the table; ``run()`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import itertools
import json
import runpy
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from carbon_testing.cluster import Cluster
from stats import median_difference_interval, verdict  # bench/stats.py (this script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
PLAIN, CARBON = "cluster_bench_plain", "cluster_bench_carbon"
ROUNDS = 2
GOAL_ADDED_MS = 30.0  # issue 16: added per task on the cluster, median (ms)
POLL_S = 0.05
DAG_FILE = HERE / "dags_cluster" / "cluster_bench_dags.py"


def _ts(text: str | None) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else float("nan")


def _visibility_poller(c: Cluster, dag_id: str, run_id: str, via_ui: bool) -> tuple[Callable[[], None], dict[tuple[str, int], float], list[float]]:
    """A function that polls once for the run's records, the first time (epoch s) each task instance's
    record was seen, and the instants of every poll."""
    seen: dict[tuple[str, int], float] = {}
    polls: list[float] = []
    if via_ui:
        path = f"/carbon/api/dags/{c.q(dag_id)}/runs/{c.q(run_id)}"
    else:
        path = f"/api/v2/dags/{c.q(dag_id)}/dagRuns/{c.q(run_id)}/taskInstances/~/xcomEntries?xcom_key=carbon_records&limit=1000"

    def poll() -> None:
        status, data = c.request("GET", path)
        now = time.time()
        polls.append(now)
        if status != 200 or not isinstance(data, dict):
            return
        rows = data.get("tasks") if via_ui else data.get("xcom_entries")
        for row in rows or []:
            seen.setdefault((row["task_id"], row["map_index"]), now)

    return poll, seen, polls


def _one_run(c: Cluster, dag_id: str, via_ui: bool) -> dict[str, Any]:
    run_id = c.trigger(dag_id)
    poll, seen, polls = _visibility_poller(c, dag_id, run_id, via_ui)
    dag_run = c.wait(dag_id, run_id, timeout_s=600, interval_s=1.0, on_poll=poll, poll_s=POLL_S)
    if dag_run["state"] != "success":
        raise RuntimeError(f"{dag_id} {run_id} ended {dag_run['state']}\n{c.diagnostics(dag_id, run_id)}")
    for _ in range(40):  # records of the last tasks may become visible just after the run's end
        if len(seen) >= len(c.task_instances(dag_id, run_id)) or dag_id == PLAIN:
            break
        poll()
        time.sleep(POLL_S)
    tis = c.task_instances(dag_id, run_id)
    written = {(x["task_id"], x["map_index"]): _ts(x["timestamp"]) for x in c.xcom_entries(dag_id, run_id, "carbon_records")}
    task_s = [_ts(t["end_date"]) - _ts(t["start_date"]) for t in tis]
    out: dict[str, Any] = {
        "run_id": run_id,
        "run_wall_s": _ts(dag_run["end_date"]) - _ts(dag_run["start_date"]),
        "task_s": task_s,
        "poll_period_s": statistics.mean(b - a for a, b in itertools.pairwise(polls)) if len(polls) > 1 else None,
    }
    if dag_id == CARBON:
        ends = {(t["task_id"], t["map_index"]): _ts(t["end_date"]) for t in tis}
        missing = sorted(set(ends) - set(seen))
        if missing:
            raise RuntimeError(f"{dag_id} {run_id}: no record seen for {missing}")
        out["visible_after_end_s"] = [seen[k] - ends[k] for k in ends]
        out["written_after_end_s"] = [written[k] - ends[k] for k in ends]
    return out


def _round_trips(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per DAG, per message kind: messages per task and median ms a message, from the task processes' files
    (cluster_bench_dags.py's _time_round_trips); a process is a task of the DAG its messages name."""
    calls: dict[str, dict[str, list[float]]] = {}
    tasks: dict[str, int] = {}
    for path in folder.glob("*.jsonl"):
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        dag_id = next((d for _, d, _ in lines if d), None)
        if dag_id is None:  # not a task process (a DAG parse)
            continue
        tasks[dag_id] = tasks.get(dag_id, 0) + 1
        for kind, _, seconds in lines:
            calls.setdefault(dag_id, {}).setdefault(kind, []).append(seconds)
    return {dag_id: {k: {"per_task": len(v) / tasks[dag_id], "median_ms": 1e3 * statistics.median(v)} for k, v in sorted(kinds.items())}
            for dag_id, kinds in calls.items()}


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Start the cluster, run the two DAGs (a warm-up each, then ``rounds`` alternating), stop it."""
    t0 = time.monotonic()
    trips = Path(tempfile.mkdtemp(prefix="airflow-carbon-bench-trips-"))
    with Cluster([DAG_FILE], [PLAIN, CARBON], name="airflow-carbon-bench-cluster",
                 extra_env={"BENCH_ROUND_TRIPS_DIR": str(trips)}) as c:
        via_ui = c.ui_available()
        for dag_id in (PLAIN, CARBON):  # warm-up: first-run costs (imports in fresh worker children) paid once
            _one_run(c, dag_id, via_ui)
        for path in trips.glob("*.jsonl"):  # the warm-up's messages are not counted
            path.unlink()
        runs: dict[str, list[dict[str, Any]]] = {PLAIN: [], CARBON: []}
        for _ in range(rounds):  # alternate, so that drift in the machine's load hits both alike
            for dag_id in (PLAIN, CARBON):
                runs[dag_id].append(_one_run(c, dag_id, via_ui))
        start_s, concurrency = c.timings["start_s"], c.concurrency
        hostname_method = c.hostname_method
    round_trips = _round_trips(trips)
    shutil.rmtree(trips, ignore_errors=True)
    dag_file = runpy.run_path(str(DAG_FILE))  # its N and WORK_S (a DAG file, not a module on sys.path)
    N, WORK_S = dag_file["N"], dag_file["WORK_S"]

    task_s = {dag_id: [s for r in dag_runs for s in r["task_s"]] for dag_id, dag_runs in runs.items()}

    def figures(dag_id: str) -> dict[str, float]:
        tasks = task_s[dag_id]
        walls = [r["run_wall_s"] for r in runs[dag_id]]
        return {"task_median_s": statistics.median(tasks), "task_mean_s": statistics.mean(tasks), "task_max_s": max(tasks),
                "run_wall_median_s": statistics.median(walls), "task_runs": len(tasks)}

    plain, carbon = figures(PLAIN), figures(CARBON)
    visible = [s for r in runs[CARBON] for s in r["visible_after_end_s"]]
    written = [s for r in runs[CARBON] for s in r["written_after_end_s"]]
    periods = [r["poll_period_s"] for rs in runs.values() for r in rs if r["poll_period_s"]]
    return {
        "tasks_per_run": N, "task_work_s": WORK_S, "rounds": rounds, "worker_concurrency": concurrency,
        "plain": plain, "carbon": carbon,
        "task_overhead_ratio": carbon["task_median_s"] / plain["task_median_s"],
        "added_per_task_s": carbon["task_median_s"] - plain["task_median_s"],
        "added_per_task_interval_s": median_difference_interval(task_s[PLAIN], task_s[CARBON]),
        "run_overhead_ratio": carbon["run_wall_median_s"] / plain["run_wall_median_s"],
        "visibility_via": "ui" if via_ui else "xcom",
        "record_visible_after_end_s": {"median": statistics.median(visible), "min": min(visible), "max": max(visible)},
        "record_written_after_end_s": {"median": statistics.median(written), "min": min(written), "max": max(written)},
        "poll_period_s": statistics.mean(periods) if periods else None,
        "cluster_start_s": start_s, "total_s": time.monotonic() - t0, "hostnames": hostname_method,
        "round_trips": {"plain": round_trips.get(PLAIN, {}), "carbon": round_trips.get(CARBON, {})},
        "runs": runs,
    }


def table(r: dict[str, Any]) -> str:
    p, c = r["plain"], r["carbon"]
    via = "UI run JSON (/carbon/api/dags/{dag}/runs/{run})" if r["visibility_via"] == "ui" else "REST API XCom list (UI not served)"
    v, w = r["record_visible_after_end_s"], r["record_written_after_end_s"]
    low_ms, high_ms = (1e3 * x for x in r["added_per_task_interval_s"])
    lines = [
        f"\nCelery cluster (carbon_testing.cluster): {r['tasks_per_run']} mapped tasks x {r['task_work_s']:g} s sleep per run, both DAGs on the gpu worker "
        f"(concurrency {r['worker_concurrency']}), {r['rounds']} alternating rounds after a warm-up run of each; cluster up in {r['cluster_start_s']:.0f} s, "
        f"bench {r['total_s']:.0f} s",
        f"| {'figure':<58} | {'plain @task':>12} | {'@task.carbon':>12} | {'ratio':>7} |",
        f"|{'-' * 60}|{'-' * 14}|{'-' * 14}|{'-' * 9}|",
        f"| {'median task wall time, TI end - start (s)':<58} | {p['task_median_s']:12.3f} | {c['task_median_s']:12.3f} | {r['task_overhead_ratio']:6.3f}x |",
        f"| {'mean task wall time (s)':<58} | {p['task_mean_s']:12.3f} | {c['task_mean_s']:12.3f} | {c['task_mean_s'] / p['task_mean_s']:6.3f}x |",
        f"| {'max task wall time (s)':<58} | {p['task_max_s']:12.3f} | {c['task_max_s']:12.3f} | {'':>7} |",
        f"| {'median run wall time, DAG run end - start (s)':<58} | {p['run_wall_median_s']:12.3f} | {c['run_wall_median_s']:12.3f} | {r['run_overhead_ratio']:6.3f}x |",
        f"| {'added per task by @task.carbon, median (ms)':<58} | {'':>12} | {1e3 * r['added_per_task_s']:12.0f} | {'':>7} |",
        f"| {'  its 95 % interval (ms); goal <= 30: ' + verdict((low_ms, high_ms), GOAL_ADDED_MS):<58} | {'':>12} | "
        f"{f'{low_ms:.0f} to {high_ms:.0f}':>12} | {'':>7} |",
        "",
        f"Record latency after the TI's end_date, {c['task_runs']} tracked tasks; visibility polled every {1e3 * (r['poll_period_s'] or 0):.0f} ms on average via {via}",
        f"| {'figure (ms; negative: before the TI end_date)':<58} | {'median':>8} | {'min':>8} | {'max':>8} |",
        f"|{'-' * 60}|{'-' * 10}|{'-' * 10}|{'-' * 10}|",
        f"| {'record visible to a client':<58} | {1e3 * v['median']:8.0f} | {1e3 * v['min']:8.0f} | {1e3 * v['max']:8.0f} |",
        f"| {'record written (carbon_records XCom timestamp)':<58} | {1e3 * w['median']:8.0f} | {1e3 * w['min']:8.0f} | {1e3 * w['max']:8.0f} |",
    ]
    trips = r.get("round_trips") or {}
    if trips.get("plain") or trips.get("carbon"):
        plain_rt, carbon_rt = trips.get("plain", {}), trips.get("carbon", {})
        lines += [
            "",
            "Round trips per task on the cluster (each message a task process sends its supervisor, which forwards it to the api-server's execution API)",
            f"| {'message':<24} | {'plain: per task':>15} | {'tracked: per task':>17} | {'plain: median ms':>16} | {'tracked: median ms':>18} |",
            f"|{'-' * 26}|{'-' * 17}|{'-' * 19}|{'-' * 18}|{'-' * 20}|",
        ]
        for kind in sorted(set(plain_rt) | set(carbon_rt)):
            p_, t_ = plain_rt.get(kind, {}), carbon_rt.get(kind, {})
            pm = f"{p_['median_ms']:16.1f}" if p_ else f"{'':>16}"
            tm = f"{t_['median_ms']:18.1f}" if t_ else f"{'':>18}"
            lines.append(f"| {kind:<24} | {p_.get('per_task', 0):15.1f} | {t_.get('per_task', 0):17.1f} | {pm} | {tm} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--json-line", action="store_true", help="print only the figures, as one JSON line (bench/run.py)")
    args = parser.parse_args()
    result = run(args.rounds)
    figures = {k: v for k, v in result.items() if k != "runs"}
    if args.json_line:
        print(json.dumps(figures))
        return
    print(table(result))
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
