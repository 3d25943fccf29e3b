"""Airflow layer: the UI's reads from the metadata database, always limited to DAGs the user may read.

Totals over many runs are summed from flat per-run rows, so the overview and DAG pages stay fast with years of
history: for finished DAG runs, the provider's own table ``carbon_run_summary`` (:mod:`airflow_carbon.models.summary`,
a row a run, stored by the scheduler when the run ends), summed inside the database; for runs still going (few),
the same rows built from their XComs by the same code that fills the table
(:func:`~airflow_carbon.models.summary.run_rows`), added in Python. Where the table is missing (``airflow db
migrate`` not run yet), every run's row is built from its XComs: right, and slower. Only a run's or a task
instance's own page decodes full records (:func:`airflow_carbon.xcom.run_records`). A run counts on the day, and
in the period, of its last records XCom.

The grams avoided by carbon-aware starts are summed the same way, over the task instances that have a figure
(``avoided_g``): an unknown figure is left out, never counted as 0, and counted apart (:data:`ACTING_KEYS`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any

from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from airflow_carbon.core.record import COMPONENTS, format_hardware
from airflow_carbon.models.summary import FINISHED, add_hardware, run_rows, run_summary_table
from airflow_carbon.xcom import MODEL_CARD_XCOM_KEY

_SUMMED = ("emissions_g", "energy_kwh", *(f"{c}_kwh" for c in COMPONENTS), "tries", "failed_tries")
_ESTATE_SUMMED = ("emissions_g", "energy_kwh", "tries", "failed_tries")
"""What the overview sums."""

_T = run_summary_table

ACTING_KEYS = ("avoided_g", "carbon_aware_task_instances", "avoided_known_task_instances")
"""What the overview and DAG pages say of carbon-aware starts: the grams avoided (g; None where no task instance
has a known figure), the task instances with a carbon-aware start (their summary has ``waited_s``) and, of those,
the ones with a known figure (a task instance's figure sums its tries' known ones)."""

_COUNTS = ("task_instances", "carbon_aware_task_instances", "avoided_known_task_instances", "budgets_exceeded")

_tables: dict[str, bool] = {}


def _has_table(session: Session) -> bool:
    """Whether ``carbon_run_summary`` exists (asked until it does, once per database and process after)."""
    bind = session.get_bind()
    url = str(bind.engine.url)
    if not _tables.get(url):
        _tables[url] = inspect(bind).has_table(_T.name)
    return _tables[url]


def _live(session: Session, dag_ids: Collection[str], since: datetime | None) -> list[dict[str, Any]]:
    """The rows of ``dag_ids``' runs the table does not hold (those not finished; every run without the table),
    built from their XComs, since ``since``. The runs are found by id first: their XComs then by the primary key's
    first column, never by scanning every records XCom."""
    dags = list(dag_ids)
    if _has_table(session):
        going = list(session.scalars(select(DagRun.id).where(DagRun.dag_id.in_(dags), DagRun.state.notin_(FINISHED))))
        if not going:
            return []
        where = XComModel.dag_run_id.in_(going)
    else:
        where = XComModel.dag_id.in_(dags)
    return [r for r in run_rows(session, where) if since is None or r["timestamp"] >= since]


def _stored(dag_ids: Collection[str], since: datetime | None) -> Any:
    """The table's rows of ``dag_ids`` since ``since``, as a subquery."""
    query = select(_T).where(_T.c.dag_id.in_(list(dag_ids)))
    if since is not None:
        query = query.where(_T.c.timestamp >= since)
    return query.subquery()


def add_acting(into: dict[str, Any], acting: dict[str, Any]) -> None:
    """Add ``acting`` (:data:`ACTING_KEYS` and counts) to ``into``: grams add up where known, None stays unknown."""
    for k, v in acting.items():
        if k == "avoided_g":
            if v is not None:
                into[k] = (into.get(k) or 0.0) + v
            else:
                into.setdefault(k, None)
        else:
            into[k] = into.get(k, 0) + int(v or 0)


def _day(session: Session, timestamp: Any) -> Any:
    """The UTC calendar day of ``timestamp``, in this database's SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", timestamp))
    return func.date(timestamp)


def estate(session: Session, dag_ids: Collection[str], since: datetime | None) -> dict[str, Any]:
    """Per DAG (of ``dag_ids``): emissions (g), energy (kWh), runs, task instances, tries since ``since``,
    grams avoided by carbon-aware starts (:data:`ACTING_KEYS`); and per UTC day: emissions (g) and energy (kWh)."""
    if not dag_ids:
        return {"dags": [], "days": []}
    groups: list[dict[str, Any]] = []  # per DAG and UTC day: sums, counts, the last record's time
    if _has_table(session):
        s = _stored(dag_ids, since)
        day = _day(session, s.c.timestamp)
        groups += [dict(row._mapping) for row in session.execute(
            select(s.c.dag_id, day.label("day"), *(func.sum(s.c[k]).label(k) for k in (*_ESTATE_SUMMED, "task_instances")),
                   func.count().label("runs"), func.max(s.c.timestamp).label("last"), func.sum(s.c.avoided_g).label("avoided_g"),
                   *(func.sum(s.c[k]).label(k) for k in ACTING_KEYS[1:]))
            .group_by(s.c.dag_id, day)
        )]
    groups += [{**row, "day": row["timestamp"].astimezone(timezone.utc).date().isoformat(), "runs": 1, "last": row["timestamp"]}
               for row in _live(session, dag_ids, since)]
    dags: dict[str, dict[str, Any]] = {}
    days: dict[str, dict[str, float]] = defaultdict(lambda: {"emissions_g": 0.0, "energy_kwh": 0.0})
    for g in groups:
        dag = dags.setdefault(
            g["dag_id"], {"dag_id": g["dag_id"], **dict.fromkeys(_ESTATE_SUMMED, 0.0), "task_instances": 0, "runs": 0, "last_seen": None}
        )
        for k in _ESTATE_SUMMED:
            dag[k] += float(g[k] or 0.0)
        add_acting(dag, {k: g[k] for k in ACTING_KEYS})
        dag["task_instances"] += int(g["task_instances"])
        dag["runs"] += g["runs"]
        dag["last_seen"] = max(filter(None, [dag["last_seen"], _as_datetime(g["last"])]), default=None)
        bucket = days[str(g["day"])]
        bucket["emissions_g"] += float(g["emissions_g"] or 0.0)
        bucket["energy_kwh"] += float(g["energy_kwh"] or 0.0)
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
    columns = (DagRun.id, DagRun.run_id, DagRun.run_after, DagRun.logical_date, DagRun.state)
    newest = (DagRun.run_after.desc(), DagRun.id.desc())
    runs: list[dict[str, Any]] = []
    total_runs = 0
    if _has_table(session):
        s = _stored([dag_id], since)
        total_runs = session.scalar(select(func.count()).select_from(s)) or 0
        runs += [dict(row._mapping) for row in session.execute(
            select(*columns, *(s.c[k] for k in (*_SUMMED, "avoided_g", *_COUNTS, "hardware")))
            .join(DagRun, DagRun.id == s.c.dag_run_id).order_by(*newest).limit(limit)
        )]
    live = {row["dag_run_id"]: row for row in _live(session, [dag_id], since)}
    if live:
        total_runs += len(live)
        runs += [{**dict(run._mapping), **live[run.id]} for run in session.execute(select(*columns).where(DagRun.id.in_(list(live))))]
        runs.sort(key=lambda r: (r["run_after"], r["id"]), reverse=True)  # newest first, as the query orders them
    return {"runs": [_run_json(r) for r in runs[:limit]], "total_runs": total_runs}


def _run_json(r: dict[str, Any]) -> dict[str, Any]:
    """A run of :func:`dag_runs` as the UI shows it."""
    hardware: dict[str, int] = {}
    add_hardware(hardware, r["hardware"])
    return {
        "run_id": r["run_id"],
        "run_after": _iso(r["run_after"]),
        "logical_date": _iso(r["logical_date"]),
        "state": str(r["state"]) if r["state"] is not None else None,
        **{k: float(r[k] or 0.0) for k in _SUMMED},
        "tries": int(r["tries"]),
        "failed_tries": int(r["failed_tries"]),
        "task_instances": int(r["task_instances"]),
        "hardware_used": format_hardware(dict(sorted(hardware.items(), key=lambda kv: (-kv[1], kv[0])))),
        "avoided_g": None if r["avoided_g"] is None else float(r["avoided_g"]),
        **{k: int(r[k] or 0) for k in _COUNTS[1:]},
    }


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
