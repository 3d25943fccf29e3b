"""DAGs whose tries take their grams from live grid-intensity sources (tests/test_airflow_live.py runs
them with dag.test() against local simulators of the sources' APIs, the Connections given as
AIRFLOW_CONN_* variables)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from carbon_testing.work import spin

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_live():
    @task.carbon(location="GB", intensity_conn_id="uk_carbon_intensity_default", training_type="fine-tuning")
    def train(seconds: float) -> float:
        spin(seconds)
        return seconds

    train.expand(seconds=[2.5, 2.5, 0.2])


@dag(schedule=None, start_date=START, catchup=False)
def carbon_live_sources():
    @task.carbon(location="FR", intensity_conn_id="electricitymaps_default")
    def fr() -> None:
        spin(0.2)

    @task.carbon(location="US-CA", intensity_conn_id="watttime_default")
    def california() -> None:
        spin(0.2)

    @task.carbon(location="FR", intensity_conn_id="no_such_connection")
    def missing() -> None:
        spin(0.1)

    @task.carbon(location="FR", g_per_kwh=12.0, intensity_conn_id="electricitymaps_default")
    def explicit() -> None:
        spin(0.1)

    fr()
    california()
    missing()
    explicit()


carbon_live()
carbon_live_sources()
