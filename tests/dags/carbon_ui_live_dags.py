"""A DAG for the UI's live grid intensity tests (tests/test_ui.py): each task pushes the records its run's
conf gives it (``{"records": {task_id: [record, ...]}}``, one per try, without the task identity), as a
tracked task does: the records under ``carbon_records``, with the valid ones' summary.
So the UI shows tries measured at a live source's intensity, lost mid-run or failed, with no live source."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from carbon_testing.pushed import push_conf_records

START = pendulum.datetime(2026, 1, 1, tz="UTC")
TASKS = ("train_fr", "train_gb", "train_ca")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_ui_live():
    @task
    def push(ti=None, dag_run=None) -> None:
        push_conf_records(ti, dag_run)

    for task_id in TASKS:
        push.override(task_id=task_id)()


carbon_ui_live()
