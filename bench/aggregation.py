"""Aggregation of a large run's records into the card metadata (a bench worker; prints one JSON line: a list of rows).

Records are realistic (8 or 1 GPUs each, every component with its details). They are written to disk first, by
this script's parent process, so the measuring process holds only what it streams:

- **publisher: our code**: a SQLite table of XCom rows as Airflow keeps them, one per mapped task instance (up
  to 3 tries each), its value the JSON of what a tracked task pushes (``xcom_value``: the summary and the records'
  JSON text). The measuring process reads the rows one at a time and times only what the publisher's own code
  does with each: decode the value (with msgspec, as Airflow hands a task its XCom values; ``decode_s``), check
  and decode its records (``airflow_carbon.xcom.checked_records``), add them to an ``Aggregate``; then
  ``co2_eq_emissions`` and ``totals``. The harness's reads from SQLite are not counted: the next row counts them.
- **PublishModelCardOperator**: the real operator, end to end through Airflow. A fresh Airflow home (SQLite) with
  bench/dags_card/card_bench_dags.py; one run made by Airflow's ``create_dagrun``, its mapped instances marked
  successful and given the XCom a tracked task pushes; then ``airflow tasks test card_bench_sweep publish``
  (Airflow's task runner and in-process execution API). ``seconds`` is the operator's ``execute()``, ``xcom_s``
  the part of it spent in Airflow's XCom reads (the lazy sequence's pages), ``peak_rss_growth_mb`` the task
  process's RSS sampled every 5 ms during ``execute()``, less its RSS before.
- **airflow-carbon card**: the same records as one JSONL file, through the CLI (``airflow-carbon card FILE
  --training-type fine-tuning``) in a child process; ``seconds`` is the command's wall time (Python's start-up
  and imports included), ``peak_rss_growth_mb`` its peak RSS less the same command's on a one-record file.

10,000, 50,000 and 100,000 records with 8 GPUs each and with 1 GPU each (publisher: our code), 100,000 x 8 GPUs
through the CLI, and 10,000 and 100,000 x 8 GPUs through the operator (and 10,000 with the values as 0.4.0 pushed
them, the records as a list of objects: what travelling as text saves); each in a fresh process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from airflow_home import fresh_home  # bench/airflow_home.py (this script's folder is on sys.path)

SIZES = (10_000, 50_000, 100_000)
CLI_SIZE = 100_000


def base_record(gpus: int = 8) -> dict:
    from carbon_testing import fake_nvml

    fake_nvml.activate(f"count={gpus}; name=NVIDIA A100-SXM4-80GB; power=const:350")
    warnings.simplefilter("ignore")
    from airflow_carbon import EnergyMeter

    with EnergyMeter(location="gcp:us-central1", pue=1.1) as meter:
        time.sleep(0.2)
    return meter.record


def task_instances(n_records: int):
    """(map_index, tries) of a sweep's mapped task instances: 1, 2 or 3 tries each, ``n_records`` tries in all."""
    i, map_index = 0, 0
    while i < n_records:
        tries = [1, 2, 3][: 1 + map_index % 3] if n_records - i >= 3 else [1][: n_records - i]
        yield map_index, tries
        i += len(tries)
        map_index += 1


def record(base: dict, map_index: int, try_number: int, last: bool, dag_id: str = "sweep") -> dict:
    r = dict(base)
    host = f"gpu-{map_index % 16}"
    r["task"] = {"dag_id": dag_id, "run_id": "manual__1", "task_id": "train", "map_index": map_index,
                 "try_number": try_number, "hostname": host, "queue": "gpu"}
    r["host"] = host
    r["status"] = "success" if last else "failed"
    return r


def instance_records(base: dict, n: int, dag_id: str = "sweep"):
    """(map_index, its tries' records) of every task instance of a sweep of ``n`` tries."""
    for map_index, tries in task_instances(n):
        yield map_index, [record(base, map_index, t, t == tries[-1], dag_id) for t in tries]


def write_xcom_db(path: str, n: int, base: dict) -> None:
    """The XCom table of a run of ``n`` tries: one row per task instance, its value the new shape's JSON."""
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.xcom import xcom_value

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE xcom (dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, key TEXT, value TEXT)")
    summary = task_summary([base])  # its size, not its figures, matters here
    rows = []
    for map_index, records in instance_records(base, n):
        rows.append(("sweep", "manual__1", "train", map_index, "carbon_records", json.dumps(xcom_value(records, summary))))
        if len(rows) == 1000:
            con.executemany("INSERT INTO xcom VALUES (?, ?, ?, ?, ?, ?)", rows)
            rows = []
    con.executemany("INSERT INTO xcom VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()


def write_jsonl(path: str, n: int, base: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for map_index, tries in task_instances(n):
            for t in tries:
                f.write(json.dumps(record(base, map_index, t, t == tries[-1])) + "\n")


def measure_publisher(db: str, n: int, gpus: int) -> dict:
    """Time (s) and peak memory growth (MB: max RSS after, less the RSS before) of the publisher's aggregation
of the XCom rows in ``db``."""
    import resource

    import msgspec
    import psutil

    from airflow_carbon.card.metadata import co2_eq_emissions
    from airflow_carbon.core.aggregate import Aggregate
    from airflow_carbon.xcom import checked_records

    decode = msgspec.json.Decoder().decode
    con = sqlite3.connect(db)
    checked_records(decode(next(con.execute("SELECT value FROM xcom LIMIT 1"))[0]))  # compile the check
    rss_before = psutil.Process().memory_info().rss / 1024  # KiB, as ru_maxrss on Linux
    decode_s = seconds = 0.0  # the harness's reads from SQLite (Airflow's part, see run_operator) are not counted
    aggregate = Aggregate()
    for (text,) in con.execute("SELECT value FROM xcom WHERE key = 'carbon_records' ORDER BY map_index"):
        t = time.perf_counter()
        value = decode(text)
        d = time.perf_counter()
        for checked in checked_records(value):
            aggregate.add(checked)
        decode_s += d - t
        seconds += time.perf_counter() - t
    t = time.perf_counter()
    co2 = co2_eq_emissions(aggregate, "fine-tuning", origin="DAG sweep")
    totals = aggregate.totals()
    seconds += time.perf_counter() - t
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert totals["tries"] == n and co2["emissions"] > 0
    return {"path": "publisher: our code", "records": n, "gpus_per_record": gpus, "seconds": seconds, "decode_s": decode_s,
            "peak_rss_growth_mb": growth_mb}


def run_cli(jsonl: str) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of ``airflow-carbon card JSONL --training-type fine-tuning``."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "airflow_carbon", "card", jsonl, "--training-type", "fine-tuning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, error
    return seconds, usage.ru_maxrss / 1024


OPERATOR_SIZES = (10_000, 100_000)


def seed_operator_run(n: int, shape: str = "0.5.0") -> None:
    """(In the child process of :func:`measure_operator`, with its Airflow environment.) One DAG run of
    card_bench_sweep made by Airflow's ``create_dagrun`` (which expands the mapped task), its mapped instances
    marked successful, each with the XCom a tracked task pushes: ``n`` records in all, 1-3 tries each. ``shape``
    "0.4.0": the value 0.4.0 pushed instead (the records as a list of objects, not as JSON text)."""
    from datetime import datetime, timezone

    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import insert, update

    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.xcom import XCOM_KEY, xcom_value

    base = base_record(8)
    summary = task_summary([base])  # its size, not its figures, matters here
    when = datetime.now(timezone.utc)
    with create_session() as session:
        dag = SerializedDagModel.get_dag("card_bench_sweep", session=session)
        run = dag.create_dagrun(run_id="manual__1", logical_date=when, data_interval=(when, when), run_after=when,
                                run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST,
                                state=DagRunState.RUNNING, session=session)
        session.flush()
        session.execute(update(TaskInstance).where(TaskInstance.task_id == "train").values(state=TaskInstanceState.SUCCESS))
        value = xcom_value if shape == "0.5.0" else lambda records, summary: {"summary": summary, "records": records}
        rows = [{"key": XCOM_KEY, "value": value(records, summary), "dag_run_id": run.id, "task_id": "train",
                 "map_index": map_index, "dag_id": "card_bench_sweep", "run_id": run.run_id, "timestamp": when}
                for map_index, records in instance_records(base, n, "card_bench_sweep")]
        for i in range(0, len(rows), 2000):
            session.execute(insert(XComModel.__table__), rows[i:i + 2000])


def run_operator(n: int) -> dict:
    """(In the child process of :func:`measure_operator`.) ``airflow tasks test card_bench_sweep publish``, in this
    process: Airflow's own task runner and execution API (in process, SQLite), the real PublishModelCardOperator.
    Times its execute() (s) and, inside it, Airflow's XCom reads (the lazy sequence's pages); samples the RSS."""
    import threading

    import psutil
    from airflow.sdk.execution_time.lazy_sequence import LazyXComSequence

    from airflow_carbon.operators.model_card import PublishModelCardOperator

    spent: dict = {"xcom_s": 0.0, "pages": 0, "page_s": []}
    read_page = LazyXComSequence.__getitem__

    def timed_page(self, key):
        t = time.perf_counter()
        page = read_page(self, key)
        spent["page_s"].append(time.perf_counter() - t)
        return page

    LazyXComSequence.__getitem__ = timed_page
    execute = PublishModelCardOperator.execute
    process = psutil.Process()

    def timed_execute(self, context):
        before = process.memory_info().rss
        peak, done = [before], threading.Event()

        def sample():
            while not done.wait(0.005):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.perf_counter()
        try:
            result = execute(self, context)
        finally:
            spent["execute_s"] = time.perf_counter() - t
            done.set()
            sampler.join()
            spent["peak_rss_growth_mb"] = (max(peak[0], process.memory_info().rss) - before) / 1e6
        spent["tries"] = result["totals"]["tries"]
        return result

    PublishModelCardOperator.execute = timed_execute
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "tasks", "test", "card_bench_sweep", "publish", "manual__1"]
    with contextlib.suppress(SystemExit):
        airflow_main()
    assert spent.get("tries") == n, spent
    spent["xcom_s"], spent["pages"] = sum(spent["page_s"]), len(spent["page_s"])
    return spent


def measure_operator(n: int, gpus: int = 8, shape: str = "0.5.0") -> dict:
    """The real PublishModelCardOperator over a run of ``n`` seeded 8-GPU records (a fresh Airflow home), the XCom
    values in ``shape`` (see :func:`seed_operator_run`)."""
    instances = sum(1 for _ in task_instances(n))
    home, env = fresh_home("carbon-card-bench-", Path(__file__).resolve().parent / "dags_card",
                           BENCH_SWEEP_INSTANCES=str(instances))
    try:
        subprocess.run([sys.executable, __file__, "--seed-operator", str(n), shape], env=env, check=True, capture_output=True)
        out = subprocess.run([sys.executable, __file__, "--run-operator", str(n)], env=env, check=True, capture_output=True, text=True)
        spent = json.loads(out.stdout.strip().splitlines()[-1])
        path = "PublishModelCardOperator" + ("" if shape == "0.5.0" else f" ({shape} values)")
        return {"path": path, "records": n, "xcom_shape": shape, "gpus_per_record": gpus, "task_instances": instances,
                "seconds": spent["execute_s"], "xcom_s": spent["xcom_s"], "xcom_pages": spent["pages"],
                "peak_rss_growth_mb": spent["peak_rss_growth_mb"], "page_ms_median": 1e3 * statistics.median(spent["page_s"]),
                "page_ms_max": 1e3 * max(spent["page_s"])}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="carbon-aggregation-") as tmp:
        for gpus in (8, 1):
            base = base_record(gpus)
            for n in SIZES:
                db = os.path.join(tmp, f"xcom-{n}-{gpus}.sqlite")
                write_xcom_db(db, n, base)
                out = subprocess.run([sys.executable, __file__, "--publisher", db, str(n), str(gpus)],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                os.remove(db)
            if gpus == 8:
                one, big = os.path.join(tmp, "one.jsonl"), os.path.join(tmp, "records.jsonl")
                write_jsonl(one, 1, base)
                write_jsonl(big, CLI_SIZE, base)
                _, baseline_mb = run_cli(one)
                seconds, peak_mb = run_cli(big)
                rows.append({"path": "airflow-carbon card", "records": CLI_SIZE, "gpus_per_record": gpus, "seconds": seconds,
                             "peak_rss_growth_mb": peak_mb - baseline_mb, "peak_rss_mb": peak_mb,
                             "file_mb": os.path.getsize(big) / 1e6})
                os.remove(big)
    rows.append(measure_operator(OPERATOR_SIZES[0], shape="0.4.0"))  # before: the records as objects
    for n in OPERATOR_SIZES:
        rows.append(measure_operator(n))
    print(json.dumps(rows))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--publisher":
        print(json.dumps(measure_publisher(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif len(sys.argv) == 4 and sys.argv[1] == "--seed-operator":
        seed_operator_run(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "--run-operator":
        result = run_operator(int(sys.argv[2]))
        print(json.dumps(result))
    elif len(sys.argv) == 3 and sys.argv[1] == "--operator":
        print(json.dumps(measure_operator(int(sys.argv[2]))))
    else:
        main()
