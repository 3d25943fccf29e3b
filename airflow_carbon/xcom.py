"""Airflow layer: where records live in Airflow, in one place: the XCom and task-state keys, and every
read of records (from a running task through XCom, and from the metadata database), each validated.

A tracked task pushes, under :data:`XCOM_KEY`, the records of every try so far (the last try's XCom
holds them all) and, under :data:`SUMMARY_XCOM_KEY`, their flat totals, which the UI sums in the
database; the same list is kept under :data:`STATE_KEY` in the task state store, which survives
retries. The publisher pushes what it wrote under :data:`MODEL_CARD_XCOM_KEY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_carbon.core.record import Record, RecordError, task_label, upgrade, validate_record

XCOM_KEY = "carbon_records"
"""XCom key of a tracked task's records: ``{"summary": {...}, "records": [...]}``, the records one per try
so far (the last try's value holds all) and their totals (:func:`airflow_carbon.core.aggregate.task_summary`),
which the UI sums in the database; one write per try. Before 0.4.0 the value was the list alone (read still)."""

SUMMARY_XCOM_KEY = "carbon_summary"
"""XCom key of the tries' totals before 0.4.0 (now the ``summary`` of :data:`XCOM_KEY`'s value)."""

STATE_KEY = "airflow_carbon.records"
"""Task state store key of the same list, which survives retries."""

MODEL_CARD_XCOM_KEY = "carbon_model_card"
"""XCom key of what the publisher wrote (metadata, where, commit), which the UI's run view shows."""


def xcom_value(records: list[Any], summary: dict[str, Any]) -> dict[str, Any]:
    """What a tracked try pushes under :data:`XCOM_KEY`: its tries' ``summary`` first, then their ``records``."""
    return {"summary": summary, "records": records}


def records_in(value: Any) -> Any:
    """The records list of a value pushed under :data:`XCOM_KEY` (0.4.0's object, or the list of 0.3.x);
    anything else is returned as it is, for the caller's validation to reject."""
    if isinstance(value, dict) and "records" in value:
        return value["records"]
    return value


def summary_in(key: str, value: Any) -> dict[str, Any] | None:
    """The task instance's summary an XCom holds: the ``summary`` of a :data:`XCOM_KEY` value (0.4.0), or a
    0.3.x :data:`SUMMARY_XCOM_KEY` value; None for anything else (0.3.x's records list, a forged value)."""
    if key == XCOM_KEY and isinstance(value, dict) and isinstance(value.get("summary"), dict):
        return value["summary"]
    if key == SUMMARY_XCOM_KEY and isinstance(value, dict) and "emissions_g" in value:
        return value
    return None


def pull_records(ti: Any, task_ids: list[str], run_ids: Iterable[str]) -> list[Record]:
    """Every record that ``task_ids`` pushed in the DAG runs ``run_ids``, through a running task's
    ``ti.xcom_pull``; each validated and in the newest shape (:func:`~airflow_carbon.core.record.upgrade`;
    RecordError naming the task, map index, try and run)."""
    pushed: list[Any] = []
    for run_id in run_ids:
        for value in ti.xcom_pull(task_ids=task_ids, key=XCOM_KEY, run_id=run_id) or []:
            pushed.extend(records_in(value) or [])
    records: list[Record] = []
    for record in pushed:
        try:
            loaded = upgrade(validate_record(record))
        except RecordError as exc:
            task = record.get("task", {}) if isinstance(record, dict) else {}
            raise RecordError(
                f"task {task.get('task_id')!r} (map index {task.get('map_index')}, try {task.get('try_number')}, "
                f"run {task.get('run_id')!r}): {exc}"
            ) from None
        if "task" not in loaded:
            raise RecordError("a record has no task identity: it was not pushed by an airflow-carbon tracked task")
        records.append(loaded)
    return records


def latest_run_id(dag_id: str, session: Any) -> str | None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1))


def run_records(dag_id: str, run_id: str, session: Any, *, task_id: str | None = None, map_index: int | None = None,
                rejected: list[str] | None = None) -> list[Record]:
    """Every valid record of the run (per tracked task instance, the list its last try pushed: all its
    tries), or of one task (``task_id``, ``map_index``). Anything else under the records' XCom key is left
    out and described in ``rejected``."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == XCOM_KEY)
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    records: list[Record] = []
    for xcom in session.scalars(query):
        where = task_label({"task_id": xcom.task_id, "map_index": xcom.map_index})
        records.extend(_valid(records_in(XComModel.deserialize_value(xcom)), where, rejected if rejected is not None else []))
    return records


def _valid(value: Any, where: str, rejected: list[str]) -> list[Record]:
    if not isinstance(value, list):
        rejected.append(f"{where}: XCom {XCOM_KEY!r} is not a list of records")
        return []
    valid: list[Record] = []
    for i, record in enumerate(value):
        try:
            record = upgrade(validate_record(record))
            if "task" not in record:
                raise RecordError("it has no task identity")
        except (RecordError, TypeError) as exc:
            rejected.append(f"{where}: item {i} of XCom {XCOM_KEY!r} is not an airflow-carbon record ({exc})")
            continue
        valid.append(record)
    return valid
