"""Aggregation of a large run's records into the card metadata (a bench worker; prints one JSON line: a list of rows).

Records are realistic (8 or 1 GPUs each, every component with its details). They are written to disk first, by
this script's parent process, so the measuring process holds only what it streams:

- **publisher**: a SQLite table of XCom rows as Airflow keeps them, one per mapped task instance (up to 3 tries
  each), its value the JSON of ``{"summary": {...}, "records": [...]}`` (0.4.0's shape). The measuring process
  reads the rows one at a time, decodes each value (with msgspec, as Airflow's Task SDK hands XCom values to a
  task; ``decode_s`` is that part of ``seconds``), and does what PublishModelCardOperator does with them: each
  record validated (``validate_record``) and upgraded, added to an ``Aggregate``, then ``co2_eq_emissions`` and
  ``totals``.
- **airflow-carbon card**: the same records as one JSONL file, through the CLI (``airflow-carbon card FILE
  --training-type fine-tuning``) in a child process; ``seconds`` is the command's wall time (Python's start-up
  and imports included), ``peak_rss_growth_mb`` its peak RSS less the same command's on a one-record file.

10,000, 50,000 and 100,000 records with 8 GPUs each and with 1 GPU each (publisher), and 100,000 x 8 GPUs
through the CLI; each in a fresh process. Peak RSS growth stays flat when records are streamed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings

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


def record_json(base: dict, map_index: int, try_number: int, last: bool) -> str:
    r = dict(base)
    host = f"gpu-{map_index % 16}"
    r["task"] = {"dag_id": "sweep", "run_id": "manual__1", "task_id": "train", "map_index": map_index,
                 "try_number": try_number, "hostname": host, "queue": "gpu"}
    r["host"] = host
    r["status"] = "success" if last else "failed"
    return json.dumps(r)


def write_xcom_db(path: str, n: int, base: dict) -> None:
    """The XCom table of a run of ``n`` tries: one row per task instance, its value the new shape's JSON."""
    from airflow_carbon.core.aggregate import task_summary

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE xcom (dag_id TEXT, run_id TEXT, task_id TEXT, map_index INTEGER, key TEXT, value TEXT)")
    summary = json.dumps(task_summary([base]))  # its size, not its figures, matters here
    rows = []
    for map_index, tries in task_instances(n):
        records = ", ".join(record_json(base, map_index, t, t == tries[-1]) for t in tries)
        rows.append(("sweep", "manual__1", "train", map_index, "carbon_records", f'{{"summary": {summary}, "records": [{records}]}}'))
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
                f.write(record_json(base, map_index, t, t == tries[-1]) + "\n")


def measure_publisher(db: str, n: int, gpus: int) -> dict:
    """Time (s) and peak memory growth (MB: max RSS after, less the RSS before) of the publisher's aggregation
of the XCom rows in ``db``."""
    import resource

    import msgspec
    import psutil

    from airflow_carbon.card.metadata import co2_eq_emissions
    from airflow_carbon.core.aggregate import Aggregate
    from airflow_carbon.core.record import upgrade, validate_record
    from airflow_carbon.xcom import records_in

    decode = msgspec.json.Decoder().decode
    con = sqlite3.connect(db)
    validate_record(records_in(decode(next(con.execute("SELECT value FROM xcom LIMIT 1"))[0]))[0])  # compile the check
    rss_before = psutil.Process().memory_info().rss / 1024  # KiB, as ru_maxrss on Linux
    t = time.perf_counter()
    decode_s = 0.0
    aggregate = Aggregate()
    for (text,) in con.execute("SELECT value FROM xcom WHERE key = 'carbon_records' ORDER BY map_index"):
        d = time.perf_counter()
        value = decode(text)
        decode_s += time.perf_counter() - d
        for record in records_in(value):
            aggregate.add(upgrade(validate_record(record)))
    co2 = co2_eq_emissions(aggregate, "fine-tuning", origin="DAG sweep")
    totals = aggregate.totals()
    seconds = time.perf_counter() - t
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert totals["tries"] == n and co2["emissions"] > 0
    return {"path": "publisher", "records": n, "gpus_per_record": gpus, "seconds": seconds, "decode_s": decode_s,
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
    print(json.dumps(rows))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--publisher":
        print(json.dumps(measure_publisher(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
