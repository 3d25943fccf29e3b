"""DAG of tests/test_cluster.py (a real Celery cluster): a tracked task whose first try is killed.

where (untracked, queue default) -> killed_once (@task.carbon, queue gpu through [carbon] gpu_queue;
its first try runs RUN_S seconds, checkpointing every second, writes the time into
$CARBON_CLUSTER_DIR/killed_once-<run_id>.kill_time and SIGKILLs its own process; the retry succeeds)
-> report (untracked).
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

RUN_S = 3.2
"""Seconds each try of killed_once runs: checkpoints fall at about 1, 2 and 3 s, the kill just after."""
CHECKPOINT_INTERVAL_S = 1


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airflow-carbon", "test"])
def carbon_cluster_killed():
    @task
    def where() -> str:
        return socket.gethostname()

    @task.carbon(location="FR", retries=1, retry_delay=timedelta(seconds=1), checkpoint_interval_s=CHECKPOINT_INTERVAL_S)
    def killed_once(ti=None) -> dict:
        time.sleep(RUN_S)
        if ti.try_number == 1:
            # when it died, for the test to compare with the last checkpoint (CARBON_CLUSTER_DIR: the cluster's tmp)
            (Path(os.environ.get("CARBON_CLUSTER_DIR", tempfile.gettempdir())) / f"killed_once-{ti.run_id}.kill_time").write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)  # no finally, no final record: like the OOM killer
        return {"host": socket.gethostname(), "try_number": ti.try_number}

    @task
    def report(result: dict) -> dict:
        return {**result, "reported_from": socket.gethostname()}

    trained = killed_once()
    where() >> trained
    report(trained)


carbon_cluster_killed()
