"""Airflow layer: the provider's own table of task-instance summaries (``carbon_task_summary``), which the UI
sums for finished DAG runs, so that its overview and DAG pages stay fast with years of history.

One row per tracked task instance of a finished DAG run: the ``summary`` of its records' XCom (the totals of all
its tries, :func:`airflow_carbon.core.aggregate.task_summary`) in columns, and the XCom's timestamp. The XComs
stay the source of truth; this table is derived from them and rebuilt from them at will:

- when a DAG run ends, the scheduler stores its rows (:func:`store_run`, from the run listener, inside the
  scheduler's own transaction); when a run starts again (its task instances cleared), its rows go
  (:func:`forget_run`), and the UI reads that run's XComs until it ends;
- ``airflow db migrate`` creates the table (:class:`~airflow_carbon.models.db_manager.CarbonDBManager`) and
  fills it from the XComs already there; ``airflow-carbon summaries rebuild`` refills it (:func:`rebuild`), for
  instance after ``airflow db clean`` removed XComs.

A task process cannot write here (the Task SDK reaches the database only through the execution API), which is
why the scheduler does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.dialects import postgresql

from airflow_carbon.xcom import SUMMARY_XCOM_KEY, XCOM_KEY

metadata = MetaData()
"""The provider's tables (apart from Airflow's own metadata)."""

NUMBERS = ("emissions_g", "energy_kwh", "gpu_kwh", "cpu_kwh", "ram_kwh", "tries", "failed_tries", "avoided_g", "waited_s")
"""The summary's numbers kept in columns: g, kWh (before PUE), tries; ``avoided_g`` (g) and ``waited_s`` (s) are NULL
for a task instance without a carbon-aware start."""

_ID_LEN = 250  # Airflow's ID_LEN: dag, task and run ids


def _utc_datetime() -> Any:
    from airflow.utils.sqlalchemy import UtcDateTime

    return UtcDateTime()


task_summary_table = Table(
    "carbon_task_summary", metadata,
    Column("dag_run_id", Integer, primary_key=True),
    Column("task_id", String(_ID_LEN), primary_key=True),
    Column("map_index", Integer, primary_key=True),
    Column("dag_id", String(_ID_LEN), nullable=False),
    Column("run_id", String(_ID_LEN), nullable=False),
    Column("timestamp", _utc_datetime(), nullable=False),
    *(Column(name, Float, nullable=name in ("avoided_g", "waited_s")) for name in NUMBERS),
    Column("budget_exceeded", Boolean, nullable=True),
    Column("hardware", JSON().with_variant(postgresql.JSONB, "postgresql"), nullable=True),
    Index("idx_carbon_task_summary_dag_time", "dag_id", "timestamp"),
)
"""``carbon_task_summary``: one row per tracked task instance of a finished DAG run."""

FINISHED = ("success", "failed")
"""The DAG run states whose task instances have rows here."""


def summary_of(key: str, value: Any) -> dict[str, Any] | None:
    """The summary an XCom holds: the ``summary`` of a records value (0.4.0), a 0.3.x ``carbon_summary``
    value; None for anything else (0.3.x's records list, a forged value)."""
    if key == XCOM_KEY and isinstance(value, dict) and isinstance(value.get("summary"), dict):
        return value["summary"]
    if key == SUMMARY_XCOM_KEY and isinstance(value, dict) and "emissions_g" in value:
        return value
    return None


def _row(xcom: Any) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel

    try:
        summary = summary_of(xcom.key, XComModel.deserialize_value(xcom))
        if summary is None:
            return None
        numbers = {k: None if summary.get(k) is None else float(summary[k]) for k in NUMBERS}
    except (TypeError, ValueError):  # a value nobody here wrote: the UI leaves it out, as it did before
        return None
    for k in NUMBERS[:7]:
        numbers[k] = numbers[k] or 0.0
    exceeded = summary.get("budget_exceeded")
    return {"dag_run_id": xcom.dag_run_id, "task_id": xcom.task_id, "map_index": xcom.map_index, "dag_id": xcom.dag_id,
            "run_id": xcom.run_id, "timestamp": xcom.timestamp, **numbers,
            "budget_exceeded": exceeded if isinstance(exceeded, bool) else None,
            "hardware": summary.get("hardware") if isinstance(summary.get("hardware"), dict) else None}


def _xcoms(session: Any, *where: Any) -> Iterator[Any]:
    from airflow.models.xcom import XComModel

    query = select(XComModel).where(XComModel.key.in_((XCOM_KEY, SUMMARY_XCOM_KEY)), *where)
    yield from session.scalars(query.execution_options(yield_per=1000))


def _insert(session: Any, rows: Iterable[dict[str, Any]], batch: int = 1000) -> int:
    count, pending = 0, []
    for row in rows:
        if row is not None:
            pending.append(row)
        if len(pending) >= batch:
            session.execute(insert(task_summary_table), pending)
            count, pending = count + len(pending), []
    if pending:
        session.execute(insert(task_summary_table), pending)
        count += len(pending)
    return count


def store_run(session: Any, dag_run_id: int) -> int:
    """The rows of one DAG run (its id), from its XComs, in place of any it had; returns how many."""
    forget_run(session, dag_run_id)
    from airflow.models.xcom import XComModel

    return _insert(session, [_row(x) for x in _xcoms(session, XComModel.dag_run_id == dag_run_id)])


def forget_run(session: Any, dag_run_id: int) -> None:
    """Remove the rows of a DAG run (its id): it runs again, the UI reads its XComs until it ends."""
    session.execute(delete(task_summary_table).where(task_summary_table.c.dag_run_id == dag_run_id))


def rebuild(session: Any, dag_ids: Iterable[str] | None = None) -> int:
    """Refill the table (or the rows of ``dag_ids``) from the XComs of every finished DAG run; returns the rows
    written. Streams the XComs (constant memory)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel

    dags = None if dag_ids is None else list(dag_ids)
    wipe = delete(task_summary_table)
    finished = select(DagRun.id).where(DagRun.state.in_(FINISHED))
    if dags is not None:
        wipe = wipe.where(task_summary_table.c.dag_id.in_(dags))
        finished = finished.where(DagRun.dag_id.in_(dags))
    session.execute(wipe)
    return _insert(session, (_row(x) for x in _xcoms(session, XComModel.dag_run_id.in_(finished))))
