"""Airflow layer: the provider's own table of DAG-run summaries (``carbon_run_summary``), which the UI sums for
finished DAG runs, so that its overview and DAG pages stay fast with years of history.

One row per finished DAG run with tracked tasks: the totals of the ``summary`` of each of its task instances'
records XCom (:func:`airflow_carbon.core.aggregate.task_summary`: all their tries) in columns, how many task
instances, and the time of its last records XCom (the run's day on the overview). The XComs stay the source of
truth; this table is derived from them and rebuilt from them at will:

- when a DAG run ends, the scheduler stores its row (:func:`store_run`, from the run listener, inside the
  scheduler's own transaction); when a run starts again (its task instances cleared), its row goes
  (:func:`forget_run`), and the UI reads that run's XComs until it ends;
- ``airflow db migrate`` creates the table (:class:`~airflow_carbon.models.db_manager.CarbonDBManager`) and
  fills it from the XComs already there; ``airflow-carbon summaries rebuild`` refills it (:func:`rebuild`), for
  instance after ``airflow db clean`` removed XComs.

A task process cannot write here (the Task SDK reaches the database only through the execution API), which is
why the scheduler does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from airflow.utils.sqlalchemy import UtcDateTime
from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.dialects import postgresql

from airflow_carbon.xcom import SUMMARY_XCOM_KEY, XCOM_KEY, summary_in

metadata = MetaData()
"""The provider's tables (apart from Airflow's own metadata)."""

SUMMED = ("emissions_g", "energy_kwh", "gpu_kwh", "cpu_kwh", "ram_kwh", "tries", "failed_tries")
"""The task instances' summed numbers: g CO2e, kWh (before PUE), tries."""

COUNTED = ("task_instances", "carbon_aware_task_instances", "avoided_known_task_instances", "budgets_exceeded")
"""How many task instances: tracked, with a carbon-aware start, of those with a known avoided figure, over budget."""

_ID_LEN = 250  # Airflow's ID_LEN: dag, task and run ids


run_summary_table = Table(
    "carbon_run_summary", metadata,
    Column("dag_run_id", Integer, primary_key=True, autoincrement=False),
    Column("dag_id", String(_ID_LEN), nullable=False),
    Column("run_id", String(_ID_LEN), nullable=False),
    Column("timestamp", UtcDateTime(), nullable=False),
    *(Column(name, Float, nullable=False) for name in SUMMED),
    Column("avoided_g", Float, nullable=True),
    *(Column(name, Integer, nullable=False) for name in COUNTED),
    Column("hardware", JSON().with_variant(postgresql.JSONB, "postgresql"), nullable=True),
    Index("idx_carbon_run_summary_dag_time", "dag_id", "timestamp"),
)
"""``carbon_run_summary``: one row per finished DAG run with tracked tasks. ``timestamp``: its last records XCom;
``avoided_g``: g avoided by carbon-aware starts, over the task instances with a known figure (NULL: none known);
``hardware``: per device name, the most one task instance used."""

FINISHED = ("success", "failed")
"""The DAG run states whose runs have a row here."""


def _number(summary: dict[str, Any], key: str) -> float | None:
    value = summary.get(key)
    return None if value is None or isinstance(value, bool) else float(value)


def run_row(xcoms: Iterable[Any]) -> dict[str, Any] | None:
    """The row of one run from its XComs (ORM rows of the records' and 0.3.x summaries' keys); None where none
    holds a summary. A value nobody here wrote is left out, as the UI leaves it out."""
    from airflow.models.xcom import XComModel

    row: dict[str, Any] | None = None
    for xcom in xcoms:
        try:
            summary = summary_in(xcom.key, XComModel.deserialize_value(xcom))
            if summary is None:
                continue
            numbers = {k: _number(summary, k) or 0.0 for k in SUMMED}
            avoided, waited = _number(summary, "avoided_g"), _number(summary, "waited_s")
        except (TypeError, ValueError):
            continue
        if row is None:
            row = {"dag_run_id": xcom.dag_run_id, "dag_id": xcom.dag_id, "run_id": xcom.run_id, "timestamp": xcom.timestamp,
                   **dict.fromkeys(SUMMED, 0.0), "avoided_g": None, **dict.fromkeys(COUNTED, 0), "hardware": {}}
        row["timestamp"] = max(row["timestamp"], xcom.timestamp)
        for k in SUMMED:
            row[k] += numbers[k]
        if avoided is not None:
            row["avoided_g"] = (row["avoided_g"] or 0.0) + avoided
        row["task_instances"] += 1
        row["carbon_aware_task_instances"] += waited is not None
        row["avoided_known_task_instances"] += avoided is not None
        row["budgets_exceeded"] += summary.get("budget_exceeded") is True
        add_hardware(row["hardware"], summary.get("hardware"))
    return row


def add_hardware(into: dict[str, int], counts: Any) -> None:
    """Merge one task instance's (or run's) device counts into ``into``: per device name, the most any one used
    (summaries carry no GPU UUIDs, so a sum could count one device twice). Anything but name -> int is ignored."""
    for name, n in (counts.items() if isinstance(counts, dict) else ()):
        if isinstance(n, int) and not isinstance(n, bool):
            into[name] = max(into.get(name, 0), n)


def _xcoms(session: Any, *where: Any) -> Iterator[Any]:
    """The records' and 0.3.x summaries' XComs, by run (the primary key's order), streamed."""
    from airflow.models.xcom import XComModel

    query = (select(XComModel).where(XComModel.key.in_((XCOM_KEY, SUMMARY_XCOM_KEY)), *where)
             .order_by(XComModel.dag_run_id, XComModel.task_id, XComModel.map_index))  # one order: the same sums
    yield from session.scalars(query.execution_options(yield_per=1000))


def _insert(session: Any, rows: Iterable[dict[str, Any] | None], batch: int = 1000) -> int:
    count, pending = 0, []
    for row in rows:
        if row is not None:
            pending.append(row)
        if len(pending) >= batch:
            session.execute(insert(run_summary_table), pending)
            count, pending = count + len(pending), []
    if pending:
        session.execute(insert(run_summary_table), pending)
        count += len(pending)
    return count


def store_run(session: Any, dag_run_id: int) -> int:
    """The row of one DAG run (its id), from its XComs, in place of the one it had; returns 1, or 0 where the run
    has no summaries."""
    from airflow.models.xcom import XComModel

    forget_run(session, dag_run_id)
    return _insert(session, [run_row(_xcoms(session, XComModel.dag_run_id == dag_run_id))])


def forget_run(session: Any, dag_run_id: int) -> None:
    """Remove the row of a DAG run (its id): it runs again, and the UI reads its XComs until it ends."""
    session.execute(delete(run_summary_table).where(run_summary_table.c.dag_run_id == dag_run_id))


def rebuild(session: Any, dag_ids: Iterable[str] | None = None) -> int:
    """Refill the table (or the rows of ``dag_ids``) from the XComs of every finished DAG run; returns the rows
    written. Streams the XComs, run by run (memory: one run's)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel

    dags = None if dag_ids is None else list(dag_ids)
    wipe = delete(run_summary_table)
    finished = select(DagRun.id).where(DagRun.state.in_(FINISHED))
    if dags is not None:
        wipe = wipe.where(run_summary_table.c.dag_id.in_(dags))
        finished = finished.where(DagRun.dag_id.in_(dags))
    session.execute(wipe)
    return _insert(session, run_rows(session, XComModel.dag_run_id.in_(finished)))


def run_rows(session: Any, *where: Any) -> Iterator[dict[str, Any]]:
    """The rows (:func:`run_row`) of the runs whose XComs match ``where``, run by run, streamed; runs without a
    summary are left out. What the table holds for finished runs, and what the UI sums for the others."""
    for _, xcoms in itertools.groupby(_xcoms(session, *where), key=lambda x: x.dag_run_id):
        row = run_row(xcoms)
        if row is not None:
            yield row
