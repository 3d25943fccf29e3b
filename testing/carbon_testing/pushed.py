"""Records a test hands to a DAG run (``conf["records"][task_id]``), pushed by a plain task as a tracked task
would push them: the records XCom (every try, bad ones included: the UI must leave them out) with the summary
of the valid ones, which the UI sums; with ``conf["xcom_shape"]`` "0.3.x" or "0.4.0", as those releases pushed them."""

from __future__ import annotations

import contextlib
from typing import Any


def push_conf_records(ti: Any, dag_run: Any) -> None:
    """Push this task's records from the run's conf, each try numbered from 1, on host ``worker-1``."""
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.core.record import RecordError, validate_record
    from airflow_carbon.xcom import SUMMARY_XCOM_KEY, XCOM_KEY, xcom_value

    identity = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": -1, "hostname": "worker-1", "queue": None}
    records = [{**r, "task": {**identity, "try_number": n}} for n, r in enumerate(dag_run.conf["records"][ti.task_id], start=1)]
    valid = []
    for r in records:
        with contextlib.suppress(RecordError):  # the UI leaves it out: so does the summary it sums
            valid.append(validate_record(r))
    if dag_run.conf.get("xcom_shape") == "0.3.x":  # as 0.3.x pushed them: the list, and the summary apart
        ti.xcom_push(key=XCOM_KEY, value=records)
        if valid:
            ti.xcom_push(key=SUMMARY_XCOM_KEY, value=task_summary(valid))
        return
    if dag_run.conf.get("xcom_shape") == "0.4.0":  # as 0.4.0 pushed them: one value, the records a list in it
        ti.xcom_push(key=XCOM_KEY, value={"summary": task_summary(valid), "records": records} if valid else records)
        return
    # no valid record, no summary: a value the UI's sums leave out, as they leave out the records of 0.3.x
    ti.xcom_push(key=XCOM_KEY, value=xcom_value(records, task_summary(valid)) if valid else records)
