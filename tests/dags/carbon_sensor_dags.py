"""DAGs that wait for a clean grid with CarbonIntensitySensor (tests/test_sensor_carbon_intensity.py runs them
with dag.test(), which runs a deferred task's trigger in-process, against a local Electricity Maps simulator;
the Connection ``sensor_em`` is given as an AIRFLOW_CONN_* variable, as a user would)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_carbon import CarbonIntensitySensor

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST = {"intensity_conn_id": "sensor_em", "poke_interval": 1}
"""Seconds, not the default minutes: each run stays short."""


@dag(schedule=None, start_date=START, catchup=False)
def carbon_sensor():
    # clean already: the first look, on the worker, succeeds without deferring
    CarbonIntensitySensor(task_id="clean", location="DE", max_g_per_kwh=200, timeout=30, **FAST)
    # dirty at first: defers, and the trigger sees the figure fall
    CarbonIntensitySensor(task_id="falls", intensity_zone="FR", max_g_per_kwh=200, timeout=30, **FAST)
    # the same without a triggerer: pokes on the worker
    CarbonIntensitySensor(task_id="poked", location="Poland", max_g_per_kwh=200, timeout=30, deferrable=False, **FAST)


@dag(schedule=None, start_date=START, catchup=False)
def carbon_sensor_timeout():
    CarbonIntensitySensor(task_id="dirty", location="DE", max_g_per_kwh=50, timeout=3, **FAST)
    CarbonIntensitySensor(task_id="dirty_soft", location="DE", max_g_per_kwh=50, timeout=3, soft_fail=True, **FAST)
    CarbonIntensitySensor(task_id="dirty_poked", location="DE", max_g_per_kwh=50, timeout=2, deferrable=False, **FAST)


carbon_sensor()
carbon_sensor_timeout()
