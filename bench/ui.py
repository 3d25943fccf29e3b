"""The UI with a year of history (a bench worker; prints one JSON line).

A fresh SQLite metadata DB is seeded with 1,000 DAG runs x 10 tracked task instances of 10 DAGs over 365
days (``python bench/ui.py RUNS_PER_DAG``: 1,000 gives 10,000 runs, 100,000 task instances), through Airflow's own code (``airflow dags reserialize``, ``create_dagrun``), each task instance with
realistic records (1 to 3 tries, 1 or 8 GPUs) with the summary, in one XCom as the tracker pushes them. A real ``airflow
api-server`` then answers the overview and DAG pages and their JSON; each is timed over HTTP on loopback
(an upper bound of the server-side time), median of 7 after one warm-up. The seeded runs are finished: their
summaries are in carbon_run_summary, filled from XCom by ``airflow-carbon summaries rebuild`` (timed). Beside it, the naive way: decode
every record XCom and sum in Python (what a page costs without the per-task summaries).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_home import fresh_home  # bench/airflow_home.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent

RUNS_PER_DAG, DAGS, TASKS = 100, 10, 10


def _prepare_home() -> Path:
    home, env = fresh_home("airflow-carbon-ui-bench-", ROOT / "bench" / "dags_ui")
    os.environ.update(env)
    return Path(home)


def _seed(runs_per_dag: int) -> int:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from aggregation import base_record  # bench/aggregation.py (this script's folder is on sys.path)
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.xcom import XCOM_KEY, xcom_value

    bases = {1: base_record(1), 8: base_record(8)}
    now = datetime.now(timezone.utc)
    records_n = 0
    with create_session() as session:
        for d in range(DAGS):
            dag_id = f"train_pipeline_{d:02d}"
            dag = SerializedDagModel.get_dag(dag_id, session=session)
            for r in range(runs_per_dag):
                when = now - timedelta(days=365 * (runs_per_dag - r) / runs_per_dag, hours=d)
                run = dag.create_dagrun(
                    run_id=f"scheduled__{when.isoformat()}", logical_date=when, data_interval=(when, when), run_after=when,
                    run_type=DagRunType.SCHEDULED, triggered_by=DagRunTriggeredByType.TIMETABLE, state=DagRunState.SUCCESS,
                    session=session,
                )
                xcoms = []
                for t in range(TASKS):
                    gpus = 8 if t % 5 == 0 else 1
                    tries = 1 + (r + t) % 3 // 2 + (1 if (r * t) % 17 == 0 else 0)
                    values = []
                    for k in range(1, tries + 1):
                        rec = copy.deepcopy(bases[gpus])
                        rec["task"] = {"dag_id": dag_id, "run_id": run.run_id, "task_id": f"train_{t}", "map_index": -1,
                                       "try_number": k, "hostname": f"gpu-{t % 4}", "queue": "gpu"}
                        rec["status"] = "success" if k == tries else "failed"
                        values.append(rec)
                    records_n += len(values)
                    common = {"dag_run_id": run.id, "task_id": f"train_{t}", "map_index": -1, "dag_id": dag_id,
                              "run_id": run.run_id, "timestamp": when + timedelta(minutes=t)}
                    xcoms.append(XComModel(key=XCOM_KEY, value=xcom_value(values, task_summary(values)), **common))
                session.add_all(xcoms)
            session.flush()
    return records_n


def _timed(get, path: str, repeat: int = 7) -> dict:
    response = get(path)  # warm-up (first request also builds the app)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return {"path": path, "median_ms": statistics.median(times), "max_ms": max(times), "bytes": len(response.content)}


def _naive_ms() -> float:
    """Every carbon_records XCom decoded and summed per DAG (no summaries)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_carbon.xcom import XCOM_KEY, records_in

    start = time.perf_counter()
    totals: dict[str, float] = {}
    with create_session() as session:
        for xcom in session.scalars(select(XComModel).where(XComModel.key == XCOM_KEY)):
            for rec in records_in(XComModel.deserialize_value(xcom)):
                totals[xcom.dag_id] = totals.get(xcom.dag_id, 0.0) + rec["emissions_g"]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    home = _prepare_home()
    t0 = time.perf_counter()
    runs_per_dag = int(sys.argv[1]) if len(sys.argv) > 1 else RUNS_PER_DAG
    records_n = _seed(runs_per_dag)
    seed_s = time.perf_counter() - t0
    # seeded runs were created finished, without the scheduler's run listener: fill carbon_run_summary from
    # XCom as a user upgrading from 0.3.x does (or `airflow db migrate` on a database with history)
    t0 = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("airflow-carbon")), "summaries", "rebuild"], check=True,
                   capture_output=True)
    rebuild_s = time.perf_counter() - t0
    from carbon_testing.ui_server import ApiServer

    server = ApiServer(home, scope={}).start()
    try:
        get = lambda path: server.get(path)  # noqa: E731
        rows = [_timed(get, p) for p in [
            "/carbon/?period=all", "/carbon/api/overview?period=all", "/carbon/?period=30d",
            "/carbon/dags/train_pipeline_03?period=all", "/carbon/api/dags/train_pipeline_03?period=all",
            "/carbon/dags/train_pipeline_03?period=all&limit=1000",
        ]]
        run_id = server.get("/carbon/api/dags/train_pipeline_03?period=all&limit=1").json()["runs"][0]["run_id"]
        from urllib.parse import quote

        rows.append(_timed(get, f"/carbon/dags/train_pipeline_03/runs/{quote(run_id, safe='')}"))
    finally:
        server.stop()
    naive = statistics.median(_naive_ms() for _ in range(3))
    db_mb = (home / "airflow.db").stat().st_size / 1e6
    if os.environ.get("UI_BENCH_KEEP"):  # for looking into a slow query: the seeded AIRFLOW_HOME stays
        print(f"kept {home}", file=sys.stderr)
    else:
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"runs": DAGS * runs_per_dag, "task_instances": DAGS * runs_per_dag * TASKS, "records": records_n,
                      "seed_s": seed_s, "summaries_rebuild_s": rebuild_s, "db_mb": db_mb, "pages": rows, "naive_decode_all_ms": naive}))


if __name__ == "__main__":
    main()
