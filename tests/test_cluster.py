"""airflow-carbon on a real CeleryExecutor cluster on this machine (carbon_testing.cluster): PostgreSQL metadata DB,
Redis broker, api-server, scheduler, dag-processor, a worker on queue ``default`` (cpu-worker-1) and one on
queue ``gpu`` (gpu-worker-1, simulated GPU at 300 W). The demo DAG (dags/carbon_training.py) and
tests/dags_cluster/cluster_dags.py (a tracked task SIGKILLed in its first try) are triggered through the
REST API and run concurrently; then:

- tracked tasks ran on the gpu worker (queue gpu, its hostname), untracked ones on the default worker;
- the records name that host, and count every try (the killed one as ``interrupted``, with its energy up
  to the last checkpoint);
- the published model card's total is the records' sum; the UI's run JSON agrees with the records;
- then tests/dags_cluster/cluster_aware_dags.py: a task with ``start_within`` defers through the triggerer to
  the clean start of a simulated Electricity Maps forecast, and holds no worker slot while it waits: two
  other tracked tasks run at once on the gpu worker (concurrency 2) during its wait.

Run with ``-s`` to see the timeline (which try ran where, its energy and emissions). Needs PostgreSQL and
Redis (reachable, or installed for the harness to start its own): never skipped.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_carbon import validate_record
from airflow_carbon.card.metadata import grams
from airflow_carbon.xcom import records_in
from carbon_testing import REPO as ROOT
from carbon_testing.cluster import CPU_HOST, DEFAULT_QUEUE, GPU_HOST, GPU_QUEUE, Cluster
from carbon_testing.gridsim import ElectricityMapsSim

pytestmark = pytest.mark.system

HERE = Path(__file__).resolve().parent
DEMO, KILLED, AWARE = "carbon_training", "carbon_cluster_killed", "carbon_cluster_aware"
TRACKED = {DEMO: {"train"}, KILLED: {"killed_once"}}
"""The tasks each DAG measures (@task.carbon); every other task is untracked."""
GPU_W = 300.0
J_PER_KWH = 3.6e6
RUN_TIMEOUT_S = 420


@dataclass
class Run:
    dag_id: str
    run_id: str
    dag_run: dict[str, Any]
    tries: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    """(task_id, map_index) -> every try of that task instance (REST API), by try_number."""
    records: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    """(task_id, map_index) -> the carbon_records XCom of that task instance (one record per try)."""
    with_records: set[tuple[str, int]] = field(default_factory=set)
    """Task instances that pushed a carbon_records XCom at all."""

    def all_records(self) -> list[dict[str, Any]]:
        return [r for key in sorted(self.records) for r in self.records[key]]


def _ts(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


EM_TOKEN = "em-cluster-token-8e21"
DIRTY_S = 40.0
"""The simulated forecast is dirty (400 g/kWh) for this long after each request, then clean (100 g/kWh)."""


def _moving_forecast(now: float) -> dict[float, float]:
    """Points 5 s apart from the request's 5-second step: dirty for DIRTY_S, then clean for 10 minutes."""
    t0 = now - now % 5
    return {t0 + 5 * k: (400.0 if 5 * k < DIRTY_S else 100.0) for k in range(int(DIRTY_S / 5) + 120)}


@pytest.fixture(scope="module")
def em_sim():
    now = time.time()
    hour = now - now % 3600
    # the wall clock (now_s=None): the aware run comes minutes after this, maybe in the next hour
    with ElectricityMapsSim({"DE": {hour - 3600 * k: 100.0 for k in range(-2, 30)}}, token=EM_TOKEN, now_s=None,
                            forecasts={"DE": _moving_forecast}) as sim:
        yield sim


@pytest.fixture(scope="module")
def cluster(request, em_sim, tmp_path_factory):
    failed_before = request.session.testsfailed
    conn = {"conn_type": "electricitymaps", "host": em_sim.url, "password": EM_TOKEN}
    c = Cluster(
        [ROOT / "dags" / "carbon_training.py", ROOT / "dags" / "include", HERE / "dags_cluster" / "cluster_dags.py",
         HERE / "dags_cluster" / "cluster_aware_dags.py"],
        [DEMO, KILLED, AWARE],
        gpu_config=f"count=1; power=const:{GPU_W:g}",
        extra_env={"AIRFLOW_CONN_ELECTRICITYMAPS_DEFAULT": json.dumps(conn),
                   "AIRFLOW__CARBON__INTENSITY_CACHE_DIR": str(tmp_path_factory.mktemp("intensity-cache"))},
    )
    try:
        c.start()  # a ClusterError names what is missing: never a skip
        print(f"\ncluster up in {c.timings['start_s']:.1f} s at {c.url} ({c.tmp}); worker hostnames: {c.hostname_method}")
        yield c
        if request.session.testsfailed > failed_before:  # a check failed: show what the processes said
            print(f"\nprocess logs ({c.tmp}/logs):\n{c.log_tails()}")
    finally:
        c.stop()


@pytest.fixture(scope="module")
def runs(cluster):
    t0 = time.monotonic()
    run_ids = {dag_id: cluster.trigger(dag_id) for dag_id in (DEMO, KILLED)}  # both at once: they share the workers
    out: dict[str, Run] = {}
    for dag_id, run_id in run_ids.items():
        dag_run = cluster.wait(dag_id, run_id, timeout_s=RUN_TIMEOUT_S)
        if dag_run["state"] != "success":
            pytest.fail(f"DAG run {dag_id} {run_id} ended {dag_run['state']}\n{cluster.diagnostics(dag_id, run_id)}")
        run = out[dag_id] = Run(dag_id, run_id, dag_run)
        for ti in cluster.task_instances(dag_id, run_id):
            key = (ti["task_id"], ti["map_index"])
            run.tries[key] = cluster.tries(dag_id, run_id, *key)
        run.with_records = {(x["task_id"], x["map_index"]) for x in cluster.xcom_entries(dag_id, run_id, "carbon_records")}
        for key in run.with_records:
            run.records[key] = records_in(cluster.xcom(dag_id, run_id, key[0], "carbon_records", key[1])) or []
    print(f"both runs succeeded {time.monotonic() - t0:.1f} s after the trigger")
    yield out
    print(timeline(out, cluster))


def timeline(runs: dict[str, Run], cluster: Cluster) -> str:
    """Every try of every task instance, in start order: where it ran, its record's energy and emissions."""
    lines = [f"\nTimeline (worker hostnames: {cluster.hostname_method})"]
    header = f"{'t s':>6} {'dur s':>6}  {'dag / task [map]':<38} {'try':>3}  {'state':<12} {'queue':<8} {'hostname':<13} {'record':<11} {'host':<13} {'energy J':>9} {'g CO2e':>9}"
    for run in runs.values():
        t_run = _ts(run.dag_run["start_date"]) or 0.0
        lines += ["", f"{run.dag_id}  {run.run_id}  {run.dag_run['state']}  wall {(_ts(run.dag_run['end_date']) or 0) - t_run:.1f} s", header]
        rows = []
        for (task_id, map_index), tries in run.tries.items():
            by_try = {r["task"]["try_number"]: r for r in run.records.get((task_id, map_index), [])}
            for t in tries:
                start, end = _ts(t["start_date"]), _ts(t["end_date"])
                r = by_try.get(t["try_number"])
                rows.append((start or 0.0, (
                    f"{(start or t_run) - t_run:6.1f} {(end - start) if start and end else float('nan'):6.1f}  "
                    f"{run.dag_id + ' / ' + task_id + ('' if map_index < 0 else f' [{map_index}]'):<38} {t['try_number']:>3}  "
                    f"{t['state'] or '-':<12} {t['queue'] or '-':<8} {t['hostname'] or '-':<13} "
                    + (f"{r['status']:<11} {r['host']:<13} {r['energy_kwh'] * J_PER_KWH:9.1f} {r['emissions_g']:9.5f}" if r else f"{'-':<11} {'-':<13} {'':>9} {'':>9}")
                )))
        lines += [text for _, text in sorted(rows)]
        total = sum(r["emissions_g"] for r in run.all_records())
        lines.append(f"{'':>6} {'':>6}  {'total over every record':<38} {'':>3}  {'':<12} {'':<8} {'':<13} {'':<11} {'':<13} "
                     f"{sum(r['energy_kwh'] for r in run.all_records()) * J_PER_KWH:9.1f} {total:9.5f}")
    return "\n".join(lines)


def _tracked(run: Run, key: tuple[str, int]) -> bool:
    return key[0] in TRACKED[run.dag_id]


def test_tracked_tasks_ran_on_the_gpu_worker_and_the_rest_on_the_default_one(runs):
    wrong = []
    for run in runs.values():
        for key, tries in run.tries.items():
            queue, host = (GPU_QUEUE, GPU_HOST) if _tracked(run, key) else (DEFAULT_QUEUE, CPU_HOST)
            for t in tries:
                if (t["queue"], t["hostname"]) != (queue, host):
                    wrong.append(
                        f"{run.dag_id} {key[0]}[{key[1]}] try {t['try_number']} ran on queue {t['queue']!r}, host {t['hostname']!r}; "
                        f"expected queue {queue!r} on {host!r} ({'tracked' if _tracked(run, key) else 'untracked'})"
                    )
    assert not wrong, "tasks on the wrong worker ([carbon] gpu_queue = gpu):\n" + "\n".join(wrong)


def test_records_come_from_tracked_tasks_only_and_name_the_gpu_host(runs, cluster):
    expected_host = GPU_HOST if cluster.distinct_hosts else socket.gethostname()
    # without unshare every worker shares this machine's hostname: only Airflow's TI hostname (from
    # [core] hostname_callable) tells them apart, and record["host"] (socket.gethostname()) cannot
    for run in runs.values():
        tracked = {key for key in run.tries if _tracked(run, key)}
        assert run.with_records == tracked, f"{run.dag_id}: task instances with carbon_records {sorted(run.with_records)}, expected the tracked ones {sorted(tracked)}"
        for key, records in run.records.items():
            assert records, f"{run.dag_id} {key}: an empty carbon_records XCom"
            for r in records:
                validate_record(r)
                where = f"{run.dag_id} {key[0]}[{key[1]}] try {r['task']['try_number']}"
                assert r["task"]["hostname"] == GPU_HOST, f"{where}: record task.hostname {r['task']['hostname']!r}, expected the gpu worker {GPU_HOST!r}"
                assert r["host"] == expected_host, f"{where}: record host {r['host']!r}, expected {expected_host!r} ({cluster.hostname_method})"
                assert r["task"]["queue"] == GPU_QUEUE, f"{where}: record task.queue {r['task']['queue']!r}, expected {GPU_QUEUE!r}"
                assert r["task"]["dag_id"] == run.dag_id and r["task"]["run_id"] == run.run_id, f"{where}: record of another run: {r['task']}"
                # the gpu worker's simulated GPU reached the task process through its library path
                assert [(g["name"], g["method"]) for g in r["gpus"]] == [("NVIDIA H200", "counter")], f"{where}: GPUs {r['gpus']}"
                # the device drew 300 W the whole try; the try's part of it is at most that (tries share the GPU)
                (g,) = r["gpus"]
                assert g["device_energy_j"] == pytest.approx(GPU_W * r["duration_s"], rel=0.05), f"{where}: GPU {g['device_energy_j']:.1f} J over {r['duration_s']:.2f} s at a constant {GPU_W:g} W"
                assert g["energy_j"] <= g["device_energy_j"] * (1 + 1e-9) and g["attribution"] in ("exclusive", "equal-split")
                assert r["components"]["gpu"]["energy_kwh"] * J_PER_KWH == pytest.approx(g["energy_j"])


def test_concurrent_tries_on_the_gpu_worker_add_up_to_at_most_what_its_gpu_drew(runs):
    """Both runs' tracked tries shared the gpu worker's one GPU (concurrency 2): their GPU energies add up to
    no more than the device drew while any of them ran (300 W x the union of their windows), and to nearly
    all of it (the killed try's record stops at its last checkpoint, and the others count it as open until
    its death is noticed)."""
    records = [r for run in runs.values() for r in run.all_records()]
    spans = sorted((_ts(r["started_at"]), _ts(r["ended_at"])) for r in records)
    union, end = 0.0, -1.0
    for a, b in spans:
        union += max(0.0, b - max(a, end))
        end = max(end, b)
    attributed = sum(r["gpus"][0]["energy_j"] for r in records)
    detail = "\n".join(
        f"{r['task']['task_id']}[{r['task']['map_index']}] try {r['task']['try_number']} {r['status']}: "
        f"{_ts(r['started_at']) - spans[0][0]:.2f}-{_ts(r['ended_at']) - spans[0][0]:.2f} s, {r['gpus'][0]['energy_j']:.1f} of "
        f"{r['gpus'][0]['device_energy_j']:.1f} J, {r['gpus'][0]['attribution']}, up to {r['gpus'][0]['concurrent_windows']} windows"
        for r in sorted(records, key=lambda r: r["started_at"]))
    assert attributed <= GPU_W * union * 1.01, f"{attributed:.1f} J attributed, {GPU_W * union:.1f} J drawn\n{detail}"
    assert attributed >= GPU_W * union * 0.85, f"{attributed:.1f} J attributed, {GPU_W * union:.1f} J drawn"
    assert any(r["gpus"][0]["attribution"] == "equal-split" for r in records)  # they did overlap


def test_every_try_is_counted_the_killed_one_as_interrupted(runs, cluster):
    from dags_cluster.cluster_dags import CHECKPOINT_INTERVAL_S, RUN_S  # a DAG file: imports Airflow, so not at collection

    for run in runs.values():
        for key, records in run.records.items():
            airflow_tries = [t["try_number"] for t in run.tries[key]]
            assert [r["task"]["try_number"] for r in records] == airflow_tries, (
                f"{run.dag_id} {key}: records for tries {[r['task']['try_number'] for r in records]}, Airflow ran tries {airflow_tries}"
            )
    run = runs[KILLED]
    tries = run.tries[("killed_once", -1)]
    assert [t["try_number"] for t in tries] == [1, 2] and tries[-1]["state"] == "success", f"killed_once tries: {[(t['try_number'], t['state']) for t in tries]}"
    killed, retried = run.records[("killed_once", -1)]
    assert (killed["status"], retried["status"]) == ("interrupted", "success"), f"statuses {killed['status']!r}, {retried['status']!r}"
    assert killed["energy_kwh"] > 0 and killed["components"]["gpu"]["energy_kwh"] > 0, f"the killed try counts no energy: {killed['components']}"
    assert any("killed" in w for w in killed["warnings"]), f"the interrupted record does not say it was killed: {killed['warnings']}"
    assert killed["duration_s"] >= CHECKPOINT_INTERVAL_S, f"the killed try's record covers {killed['duration_s']:.2f} s: no checkpoint reached the store"
    kill_time = float((cluster.tmp / f"killed_once-{run.run_id}.kill_time").read_text())
    lost_s = kill_time - _ts(killed["ended_at"])
    print(f"\nkilled_once try 1: ran {RUN_S} s, last checkpoint covers {killed['duration_s']:.2f} s, {lost_s:.2f} s before the kill")
    # about one interval (plus drift and the store's round trip); two would mean a checkpoint went missing
    assert 0 <= lost_s <= 2 * CHECKPOINT_INTERVAL_S + 0.5, (
        f"the killed try's last checkpoint ended {lost_s:.2f} s before the kill; checkpoints every {CHECKPOINT_INTERVAL_S} s should lose about one interval"
    )
    assert retried["duration_s"] >= RUN_S, f"try 2 measured {retried['duration_s']:.2f} s of a {RUN_S} s task"
    for key, records in runs[DEMO].records.items():
        assert all(r["status"] == "success" for r in records), f"{DEMO} {key}: {[r['status'] for r in records]}"


def _card_front_matter(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{folder}/README.md has no YAML front matter:\n{text[:500]}"
    return yaml.safe_load(text.split("\n---", 1)[0][4:])


def test_the_card_total_is_the_sum_of_the_records(runs, cluster):
    meta = _card_front_matter(cluster.model_dir)
    co2 = meta.get("co2_eq_emissions")
    assert isinstance(co2, dict), f"the card has no co2_eq_emissions: {meta}"
    records = runs[DEMO].all_records()
    total = sum(r["emissions_g"] for r in records)
    assert co2["emissions"] == grams(total), (
        f"the card says {co2['emissions']} g, the {len(records)} records of run {runs[DEMO].run_id} sum to {total!r} g ({grams(total)} as published)"
    )
    assert co2["training_type"] == "fine-tuning"


def test_the_ui_run_json_agrees_with_the_records(runs, cluster):
    for run in runs.values():
        path = f"/carbon/api/dags/{cluster.q(run.dag_id)}/runs/{cluster.q(run.run_id)}"
        status, data = cluster.request("GET", path)
        assert status != 404 or cluster.ui_available(), f"GET {path}: 404, the carbon UI plugin (mounted at /carbon) is not served yet"
        assert status == 200, f"GET {path} -> HTTP {status}: {data}"
        records = run.all_records()
        assert data["totals"]["emissions_g"] == pytest.approx(sum(r["emissions_g"] for r in records), rel=1e-9), (
            f"{run.dag_id}: UI total {data['totals']['emissions_g']} g, records sum {sum(r['emissions_g'] for r in records)} g"
        )
        ui_rows = sorted((t["task_id"], t["map_index"], t["try_number"], t["status"], t["hostname"], round(t["emissions_g"], 12)) for t in data["tasks"])
        expected = sorted((r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"], r["status"], r["task"]["hostname"], round(r["emissions_g"], 12)) for r in records)
        assert ui_rows == expected, f"{run.dag_id}: UI rows\n{ui_rows}\nrecords\n{expected}"


def test_the_overview_sums_the_summaries_the_scheduler_stored(runs, cluster):
    """The scheduler stored each finished run's summaries in carbon_run_summary (PostgreSQL): the overview's
    per-DAG totals are the records' sums."""
    status, data = cluster.request("GET", "/carbon/api/overview?period=all")
    assert status == 200, f"GET /carbon/api/overview -> HTTP {status}: {data}"
    dags = {d["dag_id"]: d for d in data["dags"]}
    for run in runs.values():
        records = run.all_records()
        shown = dags.get(run.dag_id)
        assert shown is not None, f"{run.dag_id} is not on the overview: {sorted(dags)}"
        assert shown["emissions_g"] == pytest.approx(sum(r["emissions_g"] for r in records), rel=1e-9)
        assert shown["tries"] == len(records) and shown["task_instances"] == len(run.records) and shown["runs"] == 1


@pytest.fixture(scope="module")
def aware_run(runs, cluster):
    """carbon_cluster_aware, triggered once the other runs are done (it alone uses the gpu worker then)."""
    run_id = cluster.trigger(AWARE)
    dag_run = cluster.wait(AWARE, run_id, timeout_s=RUN_TIMEOUT_S)
    if dag_run["state"] != "success":
        pytest.fail(f"DAG run {AWARE} {run_id} ended {dag_run['state']}\n{cluster.diagnostics(AWARE, run_id)}")
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(AWARE, run_id)}
    records = {t: records_in(cluster.xcom(AWARE, run_id, t, "carbon_records")) for t in tis}
    return tis, records


def test_a_deferred_task_waits_in_the_triggerer_holding_no_worker_slot(aware_run):
    tis, records = aware_run
    (record,) = records["wait_green"]
    shift = record["shift"]
    assert shift["deferred"] is True and shift["reason"].startswith("waited ")
    requested, started = _ts(shift["requested_at"]), _ts(shift["started_at"])
    assert started - requested == pytest.approx(DIRTY_S, abs=6)  # the clean start, 5-second points
    assert shift["forecast_g_per_kwh_planned"] == 100 and shift["forecast_g_per_kwh_now"] == 400
    assert shift["avoided_g"] == pytest.approx(record["energy_kwh"] * 400 - record["emissions_g"]) and shift["avoided_g"] > 0
    assert tis["wait_green"]["try_number"] == 1 and tis["wait_green"]["hostname"] == GPU_HOST
    # the two busy tasks ran at once on the gpu worker (2 slots) while wait_green waited: it held none
    (a,), (b,) = records["busy_a"], records["busy_b"]
    assert a["task"]["hostname"] == b["task"]["hostname"] == GPU_HOST
    overlap_start = max(_ts(a["started_at"]), _ts(b["started_at"]))
    overlap_end = min(_ts(a["ended_at"]), _ts(b["ended_at"]))
    assert overlap_end - overlap_start > 5, f"busy_a and busy_b did not run at once: {a['started_at']}..{a['ended_at']}, {b['started_at']}..{b['ended_at']}"
    assert requested < overlap_start and overlap_end < started, "the overlap was not inside wait_green's wait"


def test_two_tracked_tasks_on_one_worker_split_the_gpu_they_share(aware_run):
    """busy_a and busy_b ran at once on the gpu worker (concurrency 2), on its one simulated GPU: their GPU
    energies add up to what the device drew over their union, not twice the overlap."""
    _, records = aware_run
    (a,), (b,) = records["busy_a"], records["busy_b"]
    spans = [(_ts(r["started_at"]), _ts(r["ended_at"])) for r in (a, b)]
    union = max(e for _, e in spans) - min(s for s, _ in spans)
    overlap = min(e for _, e in spans) - max(s for s, _ in spans)
    assert overlap > 5
    (ga,), (gb,) = a["gpus"], b["gpus"]
    assert ga["attribution"] == gb["attribution"] == "equal-split" and ga["concurrent_windows"] == 2
    assert ga["energy_j"] + gb["energy_j"] == pytest.approx(GPU_W * union, rel=0.01)
    for g, (s, e) in ((ga, spans[0]), (gb, spans[1])):
        assert g["device_energy_j"] == pytest.approx(GPU_W * (e - s), rel=0.01)
        assert g["energy_j"] == pytest.approx(GPU_W * ((e - s) - overlap / 2), rel=0.02)
