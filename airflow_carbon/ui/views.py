"""Airflow layer: what each UI view shows, as plain data: the JSON endpoints return it, the pages render it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session

from airflow_carbon.core.aggregate import task_summary, totals
from airflow_carbon.core.record import COMPONENTS, Record, sort_key
from airflow_carbon.ui import queries
from airflow_carbon.ui.format import intensity_source
from airflow_carbon.xcom import run_records

PERIODS = {"7d": 7, "30d": 30, "90d": 90, "all": None}
"""Accepted ``period`` values: days back from now (None: all history)."""

OVERVIEW_SORTS = ("emissions_g", "energy_kwh", "dag_id", "runs", "task_instances", "last_seen")
RUN_LIMIT = 200
"""Runs shown on a DAG's page by default (newest first); ``limit`` asks for more."""


class BadParameter(ValueError):
    """A query parameter with a value the UI does not accept (the message names both)."""


def since(period: str, now: datetime | None = None) -> datetime | None:
    if period not in PERIODS:
        raise BadParameter(f"period {period!r} is not one of {', '.join(PERIODS)}")
    days = PERIODS[period]
    return None if days is None else (now or datetime.now(timezone.utc)) - timedelta(days=days)


def overview(session: Session, dag_ids: Collection[str], period: str, sort: str = "emissions_g", order: str = "desc") -> dict[str, Any]:
    """Every readable DAG with tracked tasks: totals over ``period``, sorted; emissions per UTC day."""
    if sort not in OVERVIEW_SORTS:
        raise BadParameter(f"sort {sort!r} is not one of {', '.join(OVERVIEW_SORTS)}")
    if order not in ("asc", "desc"):
        raise BadParameter(f"order {order!r} is not one of asc, desc")
    data = queries.estate(session, dag_ids, since(period))
    dags = sorted(data["dags"], key=lambda d: (d[sort] is None, d[sort] or 0) if sort != "dag_id" else d["dag_id"], reverse=order == "desc")
    return {
        "period": period, "sort": sort, "order": order,
        "totals": {
            "emissions_g": sum(d["emissions_g"] for d in dags), "energy_kwh": sum(d["energy_kwh"] for d in dags),
            "dags": len(dags), "runs": sum(d["runs"] for d in dags), "task_instances": sum(d["task_instances"] for d in dags),
            "tries": sum(d["tries"] for d in dags),
            **acting_totals(dags),
        },
        "dags": dags,
        "days": data["days"],
    }


def acting_totals(rows: Sequence[dict[str, Any]], keys: Sequence[str] = queries.ACTING_KEYS) -> dict[str, Any]:
    """The sum of ``rows``' grams avoided by carbon-aware starts and their counts (:data:`queries.ACTING_KEYS`):
    None where no row has a known figure (unknown is not 0)."""
    out: dict[str, Any] = {k: (None if k == "avoided_g" else 0) for k in keys}
    for r in rows:
        queries.add_acting(out, {k: r[k] for k in keys})
    return out


def dag(session: Session, dag_id: str, period: str, limit: int = RUN_LIMIT) -> dict[str, Any]:
    """One DAG's tracked runs over ``period`` (newest ``limit``), with their totals."""
    if not 1 <= limit <= 100_000:
        raise BadParameter(f"limit {limit!r} is not between 1 and 100000")
    data = queries.dag_runs(session, dag_id, since(period), limit)
    runs = data["runs"]
    return {
        "dag_id": dag_id, "period": period, "limit": limit, "total_runs": data["total_runs"],
        "totals": {
            **{k: sum(r[k] for r in runs)
               for k in ("emissions_g", "energy_kwh", *(f"{c}_kwh" for c in COMPONENTS), "task_instances", "tries")},
            **acting_totals(runs, (*queries.ACTING_KEYS, "budgets_exceeded")),
        },
        "runs": runs,
    }


def try_row(record: Record) -> dict[str, Any]:
    """One task try's line: identity, outcome, where, when, energy (kWh) by component and method, g CO2e,
    its grid intensity (:func:`intensity_row`), its carbon-aware start (``shift``, the record's, or None) and
    its budget (``budget``, the record's: spent up to this try, or None)."""
    t, c = record["task"], record["components"]
    return {
        "task_id": t["task_id"], "map_index": t["map_index"], "try_number": t["try_number"],
        "status": record.get("status"), "hostname": t.get("hostname") or record["host"], "host": record["host"],
        "queue": t.get("queue"), "started_at": record["started_at"], "ended_at": record["ended_at"],
        "duration_s": record["duration_s"], "emissions_g": record["emissions_g"], "energy_kwh": record["energy_kwh"],
        **{f"{k}_kwh": c[k]["energy_kwh"] for k in COMPONENTS},
        "methods": {k: c[k]["method"] for k in COMPONENTS},
        "hardware_used": record["hardware_used"], "warnings": record["warnings"],
        **intensity_row(record["intensity"]),
        "shift": record.get("shift"), "budget": record.get("budget"),
    }


def acting_run_totals(records: Sequence[Record]) -> dict[str, Any]:
    """Over a run's tries: the grams avoided by carbon-aware starts (g, the known figures' sum; None where none
    is known), the tries with a carbon-aware start and, of those, the ones with a known figure, their waits (s);
    and the task instances whose budget was exceeded (their last try's)."""
    shifts = [r["shift"] for r in records if "shift" in r]
    known = [s["avoided_g"] for s in shifts if s.get("avoided_g") is not None]
    last: dict[tuple[str, int], Record] = {}
    for r in records:  # in task order: a task instance's last try comes last
        last[(r["task"]["task_id"], r["task"]["map_index"])] = r
    return {
        "avoided_g": sum(known) if known else None, "carbon_aware_tries": len(shifts), "avoided_known_tries": len(known),
        "waited_s": sum(s["waited_s"] for s in shifts),
        "budgets_exceeded": sum(1 for r in last.values() if r.get("budget", {}).get("exceeded")),
    }


def intensity_row(intensity: dict[str, Any]) -> dict[str, Any]:
    """A try's grid intensity in its line: g CO2e/kWh, how it was obtained, where from (for people), the
    Connection of its live source (its id only) and why it fell back to the bundled figure (None: it did not)."""
    return {
        "g_per_kwh": intensity["g_per_kwh"], "intensity_method": intensity["method"],
        "intensity_source": intensity_source(intensity), "live_source": intensity.get("live_source"),
        "conn_id": intensity.get("conn_id"), "fallback": intensity.get("fallback"),
    }


SEGMENT_FIELDS = ("start", "end", "energy_kwh", "g_per_kwh", "source", "estimated", "energy_estimated")


def intensity_segments(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The run's g CO2e/kWh over time: every try's live-intensity segments (UTC ISO start and end, kWh,
    g/kWh, source, whether the intensity or the energy is estimated), with the try they belong to, by start."""
    series = [
        {"task_id": r["task"]["task_id"], "map_index": r["task"]["map_index"], "try_number": r["task"]["try_number"],
         **{k: s.get(k) for k in SEGMENT_FIELDS}}
        for r in records for s in r["intensity"].get("segments") or []
    ]
    return sorted(series, key=lambda s: (str(s["start"]), s["task_id"], s["map_index"], s["try_number"]))


_SECRET_NAME = re.compile(r"token|secret|passw|api[-_]?key|authori[sz]ation|credential|cookie", re.IGNORECASE)
"""Names of fields that would hold a live source's credentials, which no record should carry."""


def without_secrets(record: Record) -> Record:
    """The record as the UI shows it: an ``intensity`` field named like a credential (a record names its live
    source's Connection by ``conn_id`` only; anything else would be a writer's mistake) is left out.
    The record itself when it has none."""
    intensity = record.get("intensity")
    if not isinstance(intensity, dict) or not any(_SECRET_NAME.search(k) for k in intensity):
        return record
    return {**record, "intensity": {k: v for k, v in intensity.items() if not _SECRET_NAME.search(k)}}


def _intensities(records: list[Record]) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        i = r["intensity"]
        entry = {k: i.get(k) for k in ("name", "location", "g_per_kwh", "emission_factor", "source", "year", "license", "method")}
        entry["pue"] = r["pue"]
        seen.setdefault(tuple(entry.values()), entry)
    return list(seen.values())


def _order(records: list[Record]) -> list[Record]:
    return sorted((without_secrets(r) for r in records), key=sort_key)


def run(session: Session, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """One run: totals, per task instance (every mapped instance) and per try, intensities, model cards."""
    info = queries.dag_run(session, dag_id, run_id)
    if info is None:
        return None
    rejected: list[str] = []
    records = _order(run_records(dag_id, run_id, session, rejected=rejected))
    return run_view(dag_id, info, records, rejected=rejected, model_cards=queries.model_cards(session, dag_id, run_id))


def run_view(dag_id: str, info: dict[str, Any], records: list[Record], *, rejected: Sequence[str] = (),
             model_cards: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """:func:`run` from the run's ``info`` (:func:`queries.dag_run`) and its valid records in task order."""
    groups: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r["task"]["task_id"], r["task"]["map_index"])].append(r)
    return {
        "dag_id": dag_id, **info,
        "totals": {**totals(records), **acting_run_totals(records)} if records else None,
        "task_instances": [{"task_id": t, "map_index": m, **task_summary(rs)} for (t, m), rs in groups.items()],
        "tasks": [try_row(r) for r in records],
        "intensity": _intensities(records),
        "intensity_segments": intensity_segments(records),
        "model_cards": list(model_cards),
        "rejected": list(rejected),
    }


def ordered_run_records(session: Session, dag_id: str, run_id: str) -> list[Record]:
    """Every record of the run, by task, map index and try."""
    return _order(run_records(dag_id, run_id, session))


def task_instance(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
    """One task instance: its totals, its tries' carbon-aware starts and budgets (``acting``,
    :func:`acting_run_totals`) and every try's full record; None when the run does not exist."""
    rejected: list[str] = []
    records = _order(run_records(dag_id, run_id, session, task_id=task_id, map_index=map_index, rejected=rejected))
    if not records and queries.dag_run(session, dag_id, run_id) is None:
        return None
    return {
        "rejected": rejected,
        "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
        "summary": task_summary(records) if records else None,
        "acting": acting_run_totals(records) if records else None,
        "tries": [try_row(r) for r in records],
        "records": records,
    }


def dags_csv_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The overview's table with CodeCarbon's names and units (emissions kg, energy kWh)."""
    return [{"project_name": d["dag_id"], "emissions": d["emissions_g"] / 1000, "energy_consumed": d["energy_kwh"],
             "runs": d["runs"], "task_instances": d["task_instances"], "tries": d["tries"], "timestamp": d["last_seen"]}
            for d in data["dags"]]


def runs_csv_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A DAG's runs with CodeCarbon's names and units (emissions kg, energy kWh)."""
    return [{"timestamp": r["run_after"], "project_name": data["dag_id"], "run_id": r["run_id"], "state": r["state"],
             "emissions": r["emissions_g"] / 1000, "cpu_energy": r["cpu_kwh"], "gpu_energy": r["gpu_kwh"],
             "ram_energy": r["ram_kwh"], "energy_consumed": r["energy_kwh"], "task_instances": r["task_instances"],
             "tries": r["tries"], "hardware_used": r["hardware_used"]} for r in data["runs"]]
