"""Airflow layer: the trigger a :class:`~airflow_carbon.sensors.carbon_intensity.CarbonIntensitySensor` defers to.

It polls a live source's current figure (:func:`airflow_carbon.core.live.acurrent`, the async clients) until
it is at or below ``max_g_per_kwh`` (gCO2e/kWh), or until ``end_at`` (the sensor's timeout) passes. It runs in
the triggerer, so it reads the Connection with the async lookup (``BaseHook.aget_connection``): the sync one
fails there on Airflow 3. Its kwargs hold the Connection's id, never its secrets. A source that fails (a 503, a
timeout, a refused plan) never ends the wait: the trigger warns, remembers the reason and polls again; the
timeout event says the last figure and the last failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_carbon.core.live import SOURCES, LiveSpec, acurrent
from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.sources.http import SourceError, async_client
from airflow_carbon.core.units import utc_iso
from airflow_carbon.hooks.grid_intensity import spec_from_connection

__all__ = ["CarbonIntensityTrigger", "failure_reason", "figure_event", "place_words", "unix_s_of"]


def unix_s_of(iso: str) -> float:
    """Unix seconds of an aware ISO 8601 time (``2026-01-01T10:00:00.000Z`` or ``...+00:00``); ValueError otherwise."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"end_at={iso!r} has no time zone; expected an aware ISO 8601 time such as '2026-01-01T10:00:00Z'")
    return when.timestamp()


def figure_event(figure: IntensityInterval, spec: LiveSpec, zone: str | None, max_g_per_kwh: float) -> dict[str, Any]:
    """The payload of a figure at or below the threshold (the sensor's XCom): ``g_per_kwh`` (gCO2e/kWh),
    ``at`` (the start of the interval the figure is for, UTC ISO), the source and zone, the threshold."""
    return {
        "status": "success",
        "g_per_kwh": figure.g_per_kwh,
        "max_g_per_kwh": max_g_per_kwh,
        "at": utc_iso(figure.start_s),
        "estimated": figure.estimated,
        "source": spec.source,
        "signal": spec.info.signal,
        "zone": zone,
        "conn_id": spec.conn_id,
    }


def place_words(source: str | None, zone: str | None) -> str:
    """``Electricity Maps zone DE``, or ``GB Carbon Intensity`` (Great Britain as a whole): for messages."""
    name = SOURCES[source].short_name if source in SOURCES else str(source)
    return f"{name} zone {zone}" if zone else name


def failure_reason(exc: Exception, source: str) -> str:
    """``<source>: <reason>`` of a SourceError or a ValueError (a zone or credential the client refuses)."""
    return str(exc) if isinstance(exc, SourceError) else f"{source}: {exc}"


class CarbonIntensityTrigger(BaseTrigger):
    """Fires once the live source of ``intensity_conn_id`` gives ``zone`` (None: Great Britain, for the GB API)
    a figure at or below ``max_g_per_kwh`` (gCO2e/kWh), polling every ``poll_interval_s`` (s), or at ``end_at``
    (aware ISO 8601) with a timeout. Events: ``{"status": "success", ...}`` (:func:`figure_event`),
    ``{"status": "timeout", "last_g_per_kwh", "last_at", "last_error", ...}`` and ``{"status": "error",
    "message"}`` (the Connection cannot be used)."""

    def __init__(self, *, intensity_conn_id: str, zone: str | None, max_g_per_kwh: float, poll_interval_s: float,
                 end_at: str) -> None:
        super().__init__()
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s={poll_interval_s!r} is invalid; expected seconds > 0")
        self.intensity_conn_id = intensity_conn_id
        self.zone = zone
        self.max_g_per_kwh = float(max_g_per_kwh)
        self.poll_interval_s = float(poll_interval_s)
        self.end_at = end_at
        self._end_s = unix_s_of(end_at)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and kwargs the triggerer rebuilds it from: ids and numbers, no secret."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "intensity_conn_id": self.intensity_conn_id,
            "zone": self.zone,
            "max_g_per_kwh": self.max_g_per_kwh,
            "poll_interval_s": self.poll_interval_s,
            "end_at": self.end_at,
        }

    def _timeout_event(self, source: str, last: IntensityInterval | None, last_error: str | None) -> dict[str, Any]:
        return {
            "status": "timeout", "last_g_per_kwh": last.g_per_kwh if last else None,
            "last_at": utc_iso(last.start_s) if last else None, "last_error": last_error,
            "max_g_per_kwh": self.max_g_per_kwh, "source": source, "zone": self.zone, "end_at": self.end_at,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            conn = await BaseHook.aget_connection(self.intensity_conn_id)  # masks its secrets in the triggerer's logs
            # spec_from_connection masks them again through the sync channel: off the event loop, where that may block
            spec = await asyncio.to_thread(spec_from_connection, conn, self.intensity_conn_id)
            client = await asyncio.to_thread(spec.client)  # one client for the wait: WattTime keeps its login
        except Exception as exc:  # a missing Connection, another type, a missing token: polling cannot help
            yield TriggerEvent({"status": "error", "message": f"Connection {self.intensity_conn_id!r} cannot be used: {exc}"})
            return
        where = place_words(spec.source, self.zone)
        last: IntensityInterval | None = None
        last_error: str | None = None
        try:
            async with await asyncio.to_thread(async_client) as http:  # built off the loop: it loads the TLS context
                while True:
                    try:
                        figure = await acurrent(spec, self.zone, client=client, http=http)
                    except (SourceError, ValueError) as exc:
                        last_error = failure_reason(exc, spec.source)
                        seen, level = f"no figure ({last_error})", logging.WARNING
                    else:
                        if figure.g_per_kwh <= self.max_g_per_kwh:
                            yield TriggerEvent(figure_event(figure, spec, self.zone, self.max_g_per_kwh))
                            return
                        last = figure
                        seen, level = f"{figure.g_per_kwh:g} gCO2e/kWh > {self.max_g_per_kwh:g}", logging.INFO
                    left = self._end_s - time.time()
                    if left <= 0:
                        self.log.log(level, "%s: %s; the wait ends (end_at %s)", where, seen, self.end_at)
                        yield TriggerEvent(self._timeout_event(spec.source, last, last_error))
                        return
                    wait_s = min(self.poll_interval_s, left)
                    self.log.log(level, "%s: %s; polling again in %g s", where, seen, wait_s)
                    await asyncio.sleep(wait_s)
        finally:
            client.close()
