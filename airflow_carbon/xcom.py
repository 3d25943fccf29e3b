"""Airflow layer: where records live in Airflow, in one place: the XCom and task-state keys, and every
read of records (from a running task through XCom, and from the metadata database), each validated.

A tracked task pushes, under :data:`XCOM_KEY`, one value per try: the records of every try so far (the
last try's value holds them all), as one JSON text, and their flat totals, which the UI sums in the
database. Where a later try can need them, the same list is kept under :data:`STATE_KEY` in the task
state store, which survives retries. The publisher pushes what it wrote under :data:`MODEL_CARD_XCOM_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_carbon.core.record import Record, RecordError, decode_records, task_label, upgrade, validate_record

XCOM_KEY = "carbon_records"
"""XCom key of a tracked task's records: ``{"summary": {...}, "records_json": "[...]"}`` (0.5.0), the
tries' totals (:func:`airflow_carbon.core.aggregate.task_summary`), which the UI sums in the database, and
the records, one per try so far (the last try's value holds all), as the JSON text of their list; one
write per try. Read the records with :func:`records_in`. Still read: 0.4.0's ``{"summary": {...},
"records": [...]}`` and, before 0.4.0, the list alone.

Why text: Airflow's execution API checks every node of an XCom value as JSON on the way to a task, four
times over; a record of an 8-GPU try has about 300 of them, one string has one. A run's records reach the
model-card publisher about 7x faster as text (bench/README.md), and are then decoded and checked in one
pass of compiled code (:func:`~airflow_carbon.core.record.decode_records`)."""

RECORDS_TEXT = "records_json"
"""The member of an :data:`XCOM_KEY` value that holds the records' JSON text."""

SUMMARY_XCOM_KEY = "carbon_summary"
"""XCom key of the tries' totals before 0.4.0 (now the ``summary`` of :data:`XCOM_KEY`'s value)."""

STATE_KEY = "airflow_carbon.records"
"""Task state store key of the same list, which survives retries."""

MODEL_CARD_XCOM_KEY = "carbon_model_card"
"""XCom key of what the publisher wrote (metadata, where, commit), which the UI's run view shows."""


def xcom_value(records: list[Any], summary: dict[str, Any]) -> dict[str, Any]:
    """What a tracked try pushes under :data:`XCOM_KEY`: its tries' ``summary`` first, then their records'
    JSON text (:data:`RECORDS_TEXT`)."""
    return {"summary": summary, RECORDS_TEXT: json.dumps(records, separators=(",", ":"))}


def records_in(value: Any) -> Any:
    """The records list (plain dicts, not yet validated) of a value pushed under :data:`XCOM_KEY`: 0.5.0's
    JSON text, 0.4.0's list member or 0.3.x's list. Anything else is returned as it is (text that is not
    JSON as the text), for the caller's validation to reject."""
    if isinstance(value, dict):
        if isinstance(value.get(RECORDS_TEXT), str):
            try:
                return json.loads(value[RECORDS_TEXT])
            except json.JSONDecodeError:
                return value[RECORDS_TEXT]
        if "records" in value:
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


PAGE_SIZE = 500
"""Task instances read per round trip from a mapped task's XComs: a mapped task's values reach the
publisher a page at a time, so memory holds one page however many instances there are. Each page is one
query with an OFFSET, whose cost grows with the offset, and Airflow's client holds a page several times
over while it hands it on: 500 keeps both small (bench/README.md, the model card table)."""


def iter_records(context: Any, task_ids: list[str], run_ids: Iterable[str]) -> Iterator[Record]:
    """Every record that ``task_ids`` pushed in the DAG runs ``run_ids``, read by a running task (``context``
    is its Airflow context), one task instance's value at a time; each validated and in the newest shape
    (RecordError naming the task, map index, try and run). In the task's own run, a mapped task's values
    come :data:`PAGE_SIZE` at a time through the Task SDK's lazy XCom sequence (``XComArg.resolve``), so
    memory stays flat; other tasks' values, and earlier runs', come with ``ti.xcom_pull``."""
    ti = context["ti"]
    tasks = ti.task.dag.task_dict
    paged = [t for t in task_ids if t in tasks and tasks[t].is_mapped]
    for run_id in run_ids:
        own = run_id == ti.run_id  # a mapped task's values in the task's own run come a page at a time
        pulled = [t for t in task_ids if not (own and t in paged)]
        if own:
            for task_id in paged:
                for value in _paged_values(context, tasks[task_id]):
                    yield from checked_records(value)
        if pulled:
            for value in ti.xcom_pull(task_ids=pulled, key=XCOM_KEY, run_id=run_id) or []:
                yield from checked_records(value)


def _paged_values(context: Any, task: Any) -> Iterator[Any]:
    """A mapped ``task``'s :data:`XCOM_KEY` values in the running task's own run, :data:`PAGE_SIZE` task
    instances a round trip, through the Task SDK's lazy XCom sequence."""
    from airflow.sdk import XComArg

    sequence = XComArg(task, key=XCOM_KEY).resolve(context)
    start = 0
    while page := sequence[start:start + PAGE_SIZE]:
        yield from page
        start += PAGE_SIZE


def pull_records(context: Any, task_ids: list[str], run_ids: Iterable[str]) -> list[Record]:
    """:func:`iter_records` as a list."""
    return list(iter_records(context, task_ids, run_ids))


def checked_records(value: Any) -> list[Record]:
    """The records of one pushed value, validated and in the newest shape; RecordError naming the task,
    map index, try and run of the first that is not one."""
    records = _all_valid(value)
    if records is not None:
        return records
    items = records_in(value)
    if items is None:  # a task instance that pushed nothing
        return []
    if not isinstance(items, list):  # any shape: text that is not JSON, a value nobody here pushed
        what = f"its {RECORDS_TEXT} is not the JSON text" if isinstance(value, dict) and RECORDS_TEXT in value else "it is not"
        raise RecordError(f"an XCom {XCOM_KEY!r} value: {what} of a list of records (it starts {str(items)[:40]!r})")
    checked: list[Record] = []
    for record in items:
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
        checked.append(loaded)
    return checked


def _all_valid(value: Any) -> list[Record] | None:
    """The records of a 0.5.0 value decoded and checked in one pass, where every one is valid and has a task
    identity; None otherwise (another shape, or something to judge item by item, which names each bad one)."""
    text = value.get(RECORDS_TEXT) if isinstance(value, dict) else None
    records = decode_records(text) if isinstance(text, str) else None
    return records if records is not None and all("task" in r for r in records) else None


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
