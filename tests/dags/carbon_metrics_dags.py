"""DAGs of the carbon metrics tests (tests/test_metrics.py): a try long enough for two checkpoints."""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_metrics():
    """One tracked try of ~2.5 s checkpointed every second: two ``carbon.power_w`` gauges, then the counters."""

    @task.carbon(location="FR", checkpoint_interval_s=1, queue="gpu")
    def steady() -> None:
        time.sleep(2.5)

    @task.carbon(location="FR", task_id="quick")
    def quick() -> int:
        return sum(range(10_000))

    steady()
    quick()


carbon_metrics()
