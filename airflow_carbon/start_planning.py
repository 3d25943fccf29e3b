"""Airflow layer: a tracked task's carbon-aware start (``start_within``).

When a try starts, :func:`plan_try` reads the forecast of the task's ``intensity_conn_id`` (through the host's
cache: :func:`~airflow_carbon.core.live.forecast`) and asks the core planner
(:func:`~airflow_carbon.core.planner.plan_start`) for the greenest start within ``start_within``. The operator
defers to that start (no worker slot is held while it waits) and the resumed try records what the wait was for
(the record's ``shift``, :func:`started` and :func:`with_avoided`). Every failure fails open: the try starts at
once and ``shift.reason`` says why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from typing import Any

from airflow_carbon.core.emissions import emissions_g
from airflow_carbon.core.planner import Plan, plan_start
from airflow_carbon.core.sources.http import unix_s
from airflow_carbon.core.units import utc_iso

DEFAULT_EXPECTED_DURATION_S = 3600.0
"""The expected duration (s) of a task with no ``expected_duration`` and no successful try on record."""

LATE_TOLERANCE_S = 60.0
"""A resumed try that starts this long (s) past its latest allowed start says so in its ``shift.reason``."""


def expected_duration(settings: Any, records: Iterable[dict[str, Any]]) -> tuple[float, str]:
    """The expected duration (s) of the task's work and where it came from: ``expected_duration``, else the
    median duration of the successful tries among ``records`` (this task's recent ones), else 1 h."""
    if settings.expected_duration is not None:
        return float(settings.expected_duration), "expected_duration"
    durations = [float(r["duration_s"]) for r in records if r.get("status") == "success" and r.get("duration_s", 0) > 0]
    if durations:
        return statistics.median(durations), f"the median of {len(durations)} successful tries on record"
    return DEFAULT_EXPECTED_DURATION_S, "1 h: no expected_duration and no successful try on record"


def recent_records(ti: Any, earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This task's recent records: its earlier tries in this run and the tries of its latest earlier run (its XCom).
    Never raises: what cannot be read is left out."""
    from airflow_carbon.xcom import XCOM_KEY, records_in

    records = list(earlier)
    try:
        prior = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_KEY, include_prior_dates=True,
                             map_indexes=getattr(ti, "map_index", -1))
    except Exception:  # no earlier run, or an XCom backend that refuses the query
        prior = None
    prior = records_in(prior)
    if isinstance(prior, list):
        records.extend(r for r in prior if isinstance(r, dict) and r.get("task", {}).get("run_id") != ti.run_id)
    return records


def plan_try(settings: Any, live: Any, records: Iterable[dict[str, Any]], *, now_s: float | None = None
             ) -> tuple[Plan, dict[str, Any]]:
    """The plan for a try asked to start at ``now_s`` (Unix s; default now), on the forecast of ``live`` (the try's
    :class:`~airflow_carbon.core.live.LiveIntensity`, which its meter then uses: one Connection read per try),
    and its record's ``shift`` so far (no ``started_at`` yet). Never raises: a missing forecast plans to start at
    once, with the reason."""
    now = time.time() if now_s is None else now_s
    duration_s, duration_from = expected_duration(settings, records)
    source = _source_label(live)
    try:
        from airflow_carbon.core.live import forecast

        if live.unavailable is not None or live.spec is None:
            raise ValueError(live.unavailable or "no live source")
        intervals = forecast(live.spec, live.zone, cache=live.cache, now_s=now)
        plan = plan_start(intervals, now_s=now, start_within_s=settings.start_within, duration_s=duration_s,
                          min_saving_pct=settings.min_saving_pct)
    except Exception as exc:  # fail open: start now, and say why
        reason = str(exc) if str(exc) else repr(exc)
        plan = Plan(now, now, None, None, f"started at once: no forecast ({reason})")
    shift = {
        "requested_at": utc_iso(now),
        "planned_start": utc_iso(plan.planned_start_s),
        "expected_duration_s": duration_s,
        "expected_duration_from": duration_from,
        "start_within_s": float(settings.start_within),
        "clipped_to_s": None if plan.clipped_to_s is None else plan.clipped_to_s - now,
        "forecast_g_per_kwh_now": plan.g_per_kwh_now,
        "forecast_g_per_kwh_planned": plan.g_per_kwh_planned,
        "forecast_source": source,
        "reason": plan.reason,
    }
    return plan, shift


def started(shift: dict[str, Any], *, started_s: float | None = None, deferred: bool) -> dict[str, Any]:
    """``shift`` with the try's actual start (Unix s; default now), the wait (s) and whether it deferred; a start
    later than ``start_within`` allowed (a busy triggerer or worker) is said in the reason."""
    start = time.time() if started_s is None else started_s
    requested = unix_s(shift["requested_at"])
    out = {**shift, "started_at": utc_iso(start), "waited_s": max(0.0, start - requested), "deferred": deferred}
    late = start - (requested + shift["start_within_s"])
    if late > LATE_TOLERANCE_S:
        out["reason"] = f"{shift['reason']}; it started {late:.0f} s past start_within (the triggerer or the worker was late)"
    return out


def with_avoided(shift: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``shift`` with ``avoided_g`` (g): the try's energy at the forecast intensity of starting when it was
    requested (x PUE), minus its emissions from its live segments; 0 for a try that did not wait; None where
    the forecast or the live figures are missing (``avoided_basis`` says which)."""
    out = dict(shift)
    g_now = shift.get("forecast_g_per_kwh_now")
    if not shift.get("deferred"):
        out["avoided_g"], out["avoided_basis"] = 0.0, "it started at once: nothing was avoided"
    elif g_now is None:
        out["avoided_g"], out["avoided_basis"] = None, "no forecast for starting when it was requested"
    elif record["intensity"].get("method") != "live":
        out["avoided_g"], out["avoided_basis"] = None, "its emissions have no live figure to compare with the forecast"
    else:
        out["avoided_g"] = emissions_g(record["energy_kwh"], g_now, record["pue"]) - record["emissions_g"]
        out["avoided_basis"] = (f"{record['energy_kwh']:.6g} kWh x {g_now:.4g} gCO2e/kWh (the forecast for starting at "
                                f"{shift['requested_at']}) x PUE {record['pue']:g}, minus its {record['emissions_g']:.6g} g "
                                "from live segments")
    return out


def _source_label(live: Any) -> str | None:
    if live.info is None:
        return f"Connection {live.conn_id!r}" if live.conn_id else None
    zone = f" zone {live.zone}" if live.zone else ""
    conn = f" (Connection {live.conn_id!r})" if live.conn_id else ""
    return f"{live.info.short_name}{zone}{conn}"
