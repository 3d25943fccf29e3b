"""DAGs for the UI's carbon-aware start and budget views (the ``ui`` fixture in tests/conftest.py, tests/test_ui.py
and tests/test_ui_browser.py).

``carbon_ui_aware``: a real tracked task that waits a few seconds for a greener start of a simulated Electricity
Maps forecast (the fixture's, points seconds apart) and exceeds its tiny CO2 budget (warn: it goes on).

``carbon_ui_aware_pushed``: each task pushes the records its run's conf gives it (``{"records": {task_id:
[record, ...]}}``, one per try, without the task identity), as a tracked task does (as carbon_ui_live does): tries
whose wait cost more (negative avoided grams), whose avoided grams are unknown, a retry that started at once, and a
budget that stopped a try.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from carbon_testing.pushed import push_conf_records

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PUSHED_TASKS = ("train_late", "train_unknown", "train_retried")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_ui_aware():
    @task.carbon(location="DE", intensity_conn_id="electricitymaps_default", start_within=timedelta(minutes=2),
                 expected_duration=timedelta(seconds=60), co2_budget_g=1e-6)
    def train() -> None:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            sum(i * i for i in range(2_000))

    train()


carbon_ui_aware()


@dag(schedule=None, start_date=START, catchup=False)
def carbon_ui_aware_pushed():
    @task
    def push(ti=None, dag_run=None) -> None:
        push_conf_records(ti, dag_run)

    for task_id in PUSHED_TASKS:
        push.override(task_id=task_id)()


carbon_ui_aware_pushed()
