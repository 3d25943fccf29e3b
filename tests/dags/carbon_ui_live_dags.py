"""A DAG for the UI's live grid intensity tests (tests/test_ui.py): each task pushes the records its run's
conf gives it (``{"records": {task_id: [record, ...]}}``, one per try, without the task identity), as a
tracked task does: the records under ``carbon_records`` and the valid ones' summary under ``carbon_summary``.
So the UI shows tries measured at a live source's intensity, lost mid-run or failed, with no live source."""

from __future__ import annotations

import contextlib

import pendulum
from airflow.sdk import dag, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")
TASKS = ("train_fr", "train_gb", "train_ca")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_ui_live():
    @task
    def push(ti=None, dag_run=None) -> None:
        from airflow_carbon.core.aggregate import task_summary
        from airflow_carbon.core.record import RecordError, validate_record
        from airflow_carbon.xcom import SUMMARY_XCOM_KEY, XCOM_KEY

        identity = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": -1, "hostname": "worker-1", "queue": None}
        records = [{**r, "task": {**identity, "try_number": n}} for n, r in enumerate(dag_run.conf["records"][ti.task_id], start=1)]
        valid = []
        for r in records:
            with contextlib.suppress(RecordError):  # the UI leaves it out: so does the summary it sums
                valid.append(validate_record(r))
        ti.xcom_push(key=XCOM_KEY, value=records)
        if valid:
            ti.xcom_push(key=SUMMARY_XCOM_KEY, value=task_summary(valid))

    for task_id in TASKS:
        push.override(task_id=task_id)()


carbon_ui_live()
