"""DAG of tests/test_cluster.py: a carbon-aware start on a real Celery cluster with a triggerer.

wait_green (@task.carbon, start_within) reads the forecast of electricitymaps_default (the test's simulator:
dirty for DIRTY_S after each request, clean after), defers to the clean start, and runs WORK_S. busy_a and
busy_b (@task.carbon, the same gpu worker, concurrency 2) start after gate (untracked, the default worker,
GATE_S), by when wait_green has deferred: they run at once only if the deferred task holds no worker slot.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

WORK_S = 2.0
BUSY_S = 12.0
GATE_S = 4.0


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airflow-carbon", "test"])
def carbon_cluster_aware():
    @task.carbon(location="DE", intensity_conn_id="electricitymaps_default", start_within=timedelta(minutes=3),
                 expected_duration=timedelta(seconds=30))
    def wait_green() -> None:
        time.sleep(WORK_S)

    @task.carbon(location="DE")
    def busy(name: str) -> str:
        time.sleep(BUSY_S)
        return name

    @task
    def gate() -> None:
        time.sleep(GATE_S)

    wait_green()
    opened = gate()
    opened >> busy.override(task_id="busy_a")("a")
    opened >> busy.override(task_id="busy_b")("b")


carbon_cluster_aware()
