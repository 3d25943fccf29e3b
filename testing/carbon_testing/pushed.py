"""Records a test hands to a DAG run (``conf["records"][task_id]``), pushed by a plain task as a tracked task
would push them: the records XCom (every try, bad ones included: the UI must leave them out) and the summary
of the valid ones, which the UI sums."""

from __future__ import annotations

import contextlib
from typing import Any


def push_conf_records(ti: Any, dag_run: Any) -> None:
    """Push this task's records from the run's conf, each try numbered from 1, on host ``worker-1``."""
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
