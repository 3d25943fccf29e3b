"""Per-task overhead of @task.carbon against plain @task, in one dag.test() session (a bench worker).

Prints one JSON line: median task-instance durations (s) from Airflow's own start/end dates, over
every mapped instance of both DAGs run alternately ROUNDS times, after a warm-up run of each; and the import time (s) that
airflow_carbon's plugin adds to a task process that has already imported the Task SDK; and every message each
task sent to the execution API (its round trips), by kind: calls per task and median ms a call.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUNDS = 3


def plugin_import_s(repeats: int = 7) -> float:
    code = (
        "import time, airflow.sdk, airflow.plugins_manager, airflow.sdk.execution_time.task_runner\n"
        "t = time.perf_counter(); import airflow_carbon.plugins.carbon; print(time.perf_counter() - t)"
    )
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(repeats)]
    return statistics.median(runs)


def main() -> None:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-carbon-bench-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(HERE / "dags")
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True, capture_output=True)
    import logging

    logging.disable(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(HERE / "dags"))
    durations: dict[str, list[float]] = {"bench_plain": [], "bench_carbon": []}
    for dag_id in durations:
        bag.get_dag(dag_id).test()  # warm-up: first-run costs (imports, NVML init) paid once
    calls: dict[str, list[tuple[str, float]]] = {dag_id: [] for dag_id in durations}
    for _round in range(ROUNDS):  # alternate, so that drift in the machine's speed hits both alike
        for dag_id in durations:
            with _round_trips(calls[dag_id]):
                run = bag.get_dag(dag_id).test()
            with create_session() as session:
                tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id))
                durations[dag_id] += [(ti.end_date - ti.start_date).total_seconds() for ti in tis]
    plain, carbon = statistics.median(durations["bench_plain"]), statistics.median(durations["bench_carbon"])
    print(json.dumps({
        "plain_task_median_s": plain, "carbon_task_median_s": carbon, "added_per_task_s": carbon - plain,
        "task_runs": {k: len(v) for k, v in durations.items()}, "plugin_import_s": plugin_import_s(),
        "round_trips": {dag_id: _per_kind(c, len(durations[dag_id])) for dag_id, c in calls.items()},
    }))


@contextlib.contextmanager
def _round_trips(into: list[tuple[str, float]]):
    """Every message a task sends to Airflow's execution API (dag.test(): in process), with its wall time (s)."""
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

    send = InProcessSupervisorComms.send

    def timed(self, msg):
        start = time.perf_counter()
        try:
            return send(self, msg)
        finally:
            into.append((type(msg).__name__, time.perf_counter() - start))

    InProcessSupervisorComms.send = timed
    try:
        yield
    finally:
        InProcessSupervisorComms.send = send


def _per_kind(calls: list[tuple[str, float]], tasks: int) -> dict[str, dict[str, float]]:
    """Per message kind: calls per task and median ms a call."""
    kinds: dict[str, list[float]] = {}
    for kind, seconds in calls:
        kinds.setdefault(kind, []).append(seconds)
    return {k: {"per_task": len(v) / tasks, "median_ms": 1e3 * statistics.median(v)} for k, v in sorted(kinds.items())}


if __name__ == "__main__":
    main()
