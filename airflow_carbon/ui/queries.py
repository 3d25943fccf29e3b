"""Airflow layer: the UI's reads from the metadata database, always limited to DAGs the user may read.

Totals over many runs are summed inside the database from flat per-run summaries, so the overview and DAG pages
stay fast with years of history: for finished DAG runs, the provider's own table ``carbon_run_summary``
(:mod:`airflow_carbon.models.summary`, a row a run, stored by the scheduler when the run ends); for runs still
going (or everywhere, where that table is missing: ``airflow db migrate`` not run yet), the ``summary`` inside
each task instance's records XCom (the XCom ``carbon_summary`` of tasks run with 0.3.x), read by the database's
JSON functions and summed per run. Only a run's or a task instance's own page decodes full records
(:func:`airflow_carbon.xcom.run_records`). A run counts on the day, and in the period, of its last records XCom.

The grams avoided by carbon-aware starts are summed the same way, over the task instances that have a figure
(``avoided_g``): an unknown figure is left out, never counted as 0, and counted apart (:data:`ACTING_KEYS`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from sqlalchemy import and_, case, func, inspect, or_, select, union_all
from sqlalchemy.orm import Session

from airflow_carbon.core.record import COMPONENTS, format_hardware
from airflow_carbon.models.summary import FINISHED, SUMMED, add_hardware, run_summary_table
from airflow_carbon.xcom import MODEL_CARD_XCOM_KEY, SUMMARY_XCOM_KEY, XCOM_KEY

_SUMMED = ("emissions_g", "energy_kwh", *(f"{c}_kwh" for c in COMPONENTS), "tries", "failed_tries")
_ESTATE_SUMMED = ("emissions_g", "energy_kwh", "tries", "failed_tries")
"""What the overview sums."""

_T = run_summary_table

ACTING_KEYS = ("avoided_g", "carbon_aware_task_instances", "avoided_known_task_instances")
"""What the overview and DAG pages say of carbon-aware starts: the grams avoided (g; None where no task instance
has a known figure), the task instances with a carbon-aware start (their summary has ``waited_s``) and, of those,
the ones with a known figure (a task instance's figure sums its tries' known ones)."""


def _summary_number(key: str) -> Any:
    """A number of a task instance's summary: in the records' value (0.4.0), else in a 0.3.x ``carbon_summary``."""
    return func.coalesce(XComModel.value[("summary", key)].as_float(), XComModel.value[key].as_float())


def _is_summary() -> Any:
    """The XCom rows that hold a task instance's summary: the records' (0.4.0), or 0.3.x's own, whose records
    (a list, no summary) are left out, so that each task instance counts once."""
    return or_(and_(XComModel.key == XCOM_KEY, XComModel.value[("summary", "tries")].as_float().isnot(None)),
               XComModel.key == SUMMARY_XCOM_KEY)


_tables: dict[str, bool] = {}


def _has_table(session: Session) -> bool:
    """Whether ``carbon_run_summary`` exists (asked until it does, once per database and process after)."""
    bind = session.get_bind()
    url = str(bind.engine.url)
    if not _tables.get(url):
        _tables[url] = inspect(bind).has_table(_T.name)
    return _tables[url]


def _from_xcoms(dag_ids: list[str], since: datetime | None, run_pks: list[int] | None) -> Any:
    """Per-run rows, as the table holds them, summed from the task instances' summaries in XCom (the runs
    ``run_pks``; every run of ``dag_ids`` where None)."""
    avoided, waited = _summary_number("avoided_g"), _summary_number("waited_s")
    exceeded = or_(XComModel.value[("summary", "budget_exceeded")].as_boolean(), XComModel.value["budget_exceeded"].as_boolean())
    query = (
        select(XComModel.dag_id.label("dag_id"), XComModel.dag_run_id.label("dag_run_id"),
               func.max(XComModel.timestamp).label("timestamp"),
               *(func.coalesce(func.sum(_summary_number(k)), 0.0).label(k) for k in SUMMED),
               func.sum(avoided).label("avoided_g"), func.count().label("task_instances"),
               func.count(waited).label("carbon_aware_task_instances"), func.count(avoided).label("avoided_known_task_instances"),
               func.count(case((exceeded, 1))).label("budgets_exceeded"))
        .where(XComModel.dag_id.in_(dag_ids), XComModel.key.in_((XCOM_KEY, SUMMARY_XCOM_KEY)), _is_summary())
        .group_by(XComModel.dag_id, XComModel.dag_run_id)
    )
    if run_pks is not None:
        query = query.where(XComModel.dag_run_id.in_(run_pks))
    if since is not None:
        query = query.having(func.max(XComModel.timestamp) >= since)
    return query


_COLUMNS = ("dag_id", "dag_run_id", "timestamp", *SUMMED, "avoided_g", "task_instances", "carbon_aware_task_instances",
            "avoided_known_task_instances", "budgets_exceeded")


def _runs(session: Session, dag_ids: Collection[str], since: datetime | None) -> Any:
    """One row per tracked run of ``dag_ids`` whose last records XCom is since ``since``: ``dag_id``, ``dag_run_id``,
    ``timestamp``, the sums (:data:`~airflow_carbon.models.summary.SUMMED`), ``avoided_g`` and the counts of task
    instances (:data:`~airflow_carbon.models.summary.COUNTED`): from the table for finished runs, from their
    XComs for the others."""
    dags = list(dag_ids)
    if not _has_table(session):
        return _from_xcoms(dags, since, None).subquery()
    stored = select(*(_T.c[k] for k in _COLUMNS)).where(_T.c.dag_id.in_(dags))
    if since is not None:
        stored = stored.where(_T.c.timestamp >= since)
    # the runs not finished (few), by id first: their XComs are then found by the primary key's first column,
    # never by scanning every records XCom (a database's planner may prefer the key's index otherwise)
    going = list(session.scalars(select(DagRun.id).where(DagRun.dag_id.in_(dags), DagRun.state.notin_(FINISHED))))
    if not going:
        return stored.subquery()
    return union_all(stored, _from_xcoms(dags, since, going)).subquery()


def _acting_columns(s: Any, budgets: bool = False) -> list[Any]:
    """:data:`ACTING_KEYS` summed over the run rows ``s``; with ``budgets``, also ``budgets_exceeded``."""
    columns = [func.sum(s.c.avoided_g).label("avoided_g"),  # NULL where none is known: SUM skips NULLs
               func.sum(s.c.carbon_aware_task_instances).label("carbon_aware_task_instances"),
               func.sum(s.c.avoided_known_task_instances).label("avoided_known_task_instances")]
    if budgets:
        columns.append(func.sum(s.c.budgets_exceeded).label("budgets_exceeded"))
    return columns


def _acting(row: Any, budgets: bool = False) -> dict[str, Any]:
    out = {
        "avoided_g": None if row.avoided_g is None else float(row.avoided_g),
        "carbon_aware_task_instances": int(row.carbon_aware_task_instances or 0),
        "avoided_known_task_instances": int(row.avoided_known_task_instances or 0),
    }
    if budgets:
        out["budgets_exceeded"] = int(row.budgets_exceeded or 0)
    return out


def add_acting(into: dict[str, Any], acting: dict[str, Any]) -> None:
    """Add ``acting`` (:data:`ACTING_KEYS` and counts) to ``into``: grams add up where known, None stays unknown."""
    for k, v in acting.items():
        if k == "avoided_g":
            if v is not None:
                into[k] = (into.get(k) or 0.0) + v
            else:
                into.setdefault(k, None)
        else:
            into[k] = into.get(k, 0) + v


def _day(session: Session, timestamp: Any) -> Any:
    """The UTC calendar day of ``timestamp``, in this database's SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", timestamp))
    return func.date(timestamp)


def _sums(s: Any, keys: Iterable[str] = _SUMMED) -> list[Any]:
    return [func.coalesce(func.sum(s.c[k]), 0.0).label(k) for k in keys]


def _row_sums(row: Any, keys: Iterable[str] = _SUMMED) -> dict[str, float]:
    return {k: float(getattr(row, k) or 0.0) for k in keys}


def estate(session: Session, dag_ids: Collection[str], since: datetime | None) -> dict[str, Any]:
    """Per DAG (of ``dag_ids``): emissions (g), energy (kWh), runs, task instances, tries since ``since``,
    grams avoided by carbon-aware starts (:data:`ACTING_KEYS`); and per UTC day: emissions (g) and energy (kWh)."""
    if not dag_ids:
        return {"dags": [], "days": []}
    s = _runs(session, dag_ids, since)
    day = _day(session, s.c.timestamp)
    per_day = session.execute(
        select(s.c.dag_id, day.label("day"), *_sums(s, _ESTATE_SUMMED), func.sum(s.c.task_instances).label("task_instances"),
               func.count().label("runs"), func.max(s.c.timestamp).label("last"), *_acting_columns(s))
        .group_by(s.c.dag_id, day)
    ).all()
    dags: dict[str, dict[str, Any]] = {}
    days: dict[str, dict[str, float]] = defaultdict(lambda: {"emissions_g": 0.0, "energy_kwh": 0.0})
    for row in per_day:
        sums = _row_sums(row, _ESTATE_SUMMED)
        dag = dags.setdefault(
            row.dag_id, {"dag_id": row.dag_id, **dict.fromkeys(_ESTATE_SUMMED, 0.0), "task_instances": 0, "runs": 0, "last_seen": None}
        )
        for k in _ESTATE_SUMMED:
            dag[k] += sums[k]
        add_acting(dag, _acting(row))
        dag["task_instances"] += int(row.task_instances)
        dag["runs"] += row.runs
        last = _as_datetime(row.last)
        dag["last_seen"] = max(filter(None, [dag["last_seen"], last]), default=None)
        bucket = days[str(row.day)]
        bucket["emissions_g"] += sums["emissions_g"]
        bucket["energy_kwh"] += sums["energy_kwh"]
    for dag in dags.values():
        dag["tries"] = int(dag["tries"])
        dag["failed_tries"] = int(dag["failed_tries"])
        dag["last_seen"] = dag["last_seen"].isoformat() if dag["last_seen"] else None
    return {
        "dags": list(dags.values()),
        "days": [{"date": d, **v} for d, v in sorted(days.items())],
    }


def dag_runs(session: Session, dag_id: str, since: datetime | None, limit: int) -> dict[str, Any]:
    """The DAG's tracked runs since ``since``, newest first (at most ``limit``): run id, dates, state,
    emissions (g), energy (kWh, by component), task instances, tries, hardware (per device, the most one
    task instance used), grams avoided by carbon-aware starts (:data:`ACTING_KEYS`) and the task instances
    whose budget was exceeded (``budgets_exceeded``); and the number of runs."""
    s = _runs(session, [dag_id], since)
    total_runs = session.scalar(select(func.count()).select_from(s)) or 0
    rows = session.execute(
        select(DagRun.id, DagRun.run_id, DagRun.run_after, DagRun.logical_date, DagRun.state,
               *(s.c[k] for k in (*_SUMMED, "avoided_g", "task_instances", "carbon_aware_task_instances",
                                  "avoided_known_task_instances", "budgets_exceeded")))
        .join(DagRun, DagRun.id == s.c.dag_run_id)
        .order_by(DagRun.run_after.desc(), DagRun.id.desc())
        .limit(limit)
    ).all()
    hardware = _hardware(session, [r.id for r in rows])
    runs = []
    for r in rows:
        sums = _row_sums(r)
        runs.append({
            "run_id": r.run_id,
            "run_after": _iso(r.run_after),
            "logical_date": _iso(r.logical_date),
            "state": str(r.state) if r.state is not None else None,
            **sums,
            "tries": int(sums["tries"]),
            "failed_tries": int(sums["failed_tries"]),
            "task_instances": int(r.task_instances),
            "hardware_used": format_hardware(dict(sorted(hardware[r.id].items(), key=lambda kv: (-kv[1], kv[0])))),
            **_acting(r, budgets=True),
        })
    return {"runs": runs, "total_runs": total_runs}


def _hardware(session: Session, run_pks: list[int]) -> dict[int, dict[str, int]]:
    """Per run (its id): per device name, the most one task instance used (:func:`add_hardware`); from the table
    where it holds the run, else from the XComs."""
    hardware: dict[int, dict[str, int]] = defaultdict(dict)
    if not run_pks:
        return hardware
    found: list[tuple[int, Any]] = []
    if _has_table(session):
        found += list(session.execute(select(_T.c.dag_run_id, _T.c.hardware).where(_T.c.dag_run_id.in_(run_pks))).tuples())
    stored = {pk for pk, _ in found}
    rest = [pk for pk in run_pks if pk not in stored]
    if rest:
        for run_pk, ours, older in session.execute(
            select(XComModel.dag_run_id, XComModel.value[("summary", "hardware")], XComModel.value["hardware"])
            .where(XComModel.dag_run_id.in_(rest), XComModel.key.in_((XCOM_KEY, SUMMARY_XCOM_KEY)), _is_summary())
        ):
            found.append((run_pk, ours if ours is not None else older))
    for run_pk, counts in found:
        add_hardware(hardware[run_pk], counts)
    return hardware


def dag_run(session: Session, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The run's id, dates and state, or None when there is no such run."""
    run = session.execute(
        select(DagRun.run_id, DagRun.run_after, DagRun.logical_date, DagRun.state, DagRun.start_date, DagRun.end_date)
        .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()
    if run is None:
        return None
    return {
        "run_id": run.run_id, "run_after": _iso(run.run_after), "logical_date": _iso(run.logical_date),
        "state": str(run.state) if run.state is not None else None,
        "start_date": _iso(run.start_date), "end_date": _iso(run.end_date),
    }


def model_cards(session: Session, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """What each publishing task of the run wrote to a model card (metadata, where, commit)."""
    xcoms = session.scalars(
        select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == MODEL_CARD_XCOM_KEY)
    )
    cards = []
    for xcom in xcoms:
        value = XComModel.deserialize_value(xcom)
        if isinstance(value, dict):
            cards.append({"task_id": xcom.task_id, **value})
    return cards


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))  # SQLite's aggregate returns the stored text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
