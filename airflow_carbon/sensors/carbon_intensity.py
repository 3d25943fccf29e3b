"""Airflow layer: :class:`CarbonIntensitySensor`, which waits until a grid's live carbon intensity is at or below a
threshold, for DAGs whose heavy work is not a tracked task (a Kubernetes pod, a managed training job)::

    wait = CarbonIntensitySensor(task_id="wait_for_clean_grid", location="DE", max_g_per_kwh=200,
                                 intensity_conn_id="electricitymaps_default", timeout=timedelta(hours=8))
    wait >> KubernetesPodOperator(...)

It checks the source's current figure once on the worker (no wait when the grid is clean already), then
defers to :class:`~airflow_carbon.triggers.carbon_intensity.CarbonIntensityTrigger`, which polls in the
triggerer; ``deferrable=False`` pokes on the worker instead (``mode="poke"`` or ``"reschedule"``). The
figure it succeeded on is its XCom. The Connection is read when the task runs, never when the DAG is parsed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_carbon.core.live import LiveSpec, current
from airflow_carbon.core.options import Option, is_template, validate, validate_many
from airflow_carbon.core.sources.http import SourceError
from airflow_carbon.core.units import utc_iso
from airflow_carbon.triggers.carbon_intensity import CarbonIntensityTrigger, failure_reason, figure_event, place_words

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DEFAULT_POKE_INTERVAL_S", "CarbonIntensitySensor"]

DEFAULT_POKE_INTERVAL_S = 300.0
"""Seconds between two looks at the source: the sources' figures change every 5 (WattTime) to 60 min."""
DEFER_GRACE_S = 60.0
"""Seconds the deferral's own timeout leaves after ``timeout``, so that the trigger's timeout event (which
names the last figure) comes first; Airflow's deferral timeout is the backstop of a stalled triggerer."""
MAX_G_PER_KWH = Option(
    "max_g_per_kwh", "float", "the grid intensity, in gCO2e/kWh, at or below which the sensor succeeds",
    unit="gCO2e/kWh", low=0, low_open=True, example="200", version_added="0.3.0",
)
"""The sensor's threshold, checked by the option table's rules (a sensor argument, not a task or config option)."""


class CarbonIntensitySensor(BaseSensorOperator):
    """Waits until the live grid intensity of ``location`` (or ``intensity_zone``) is at or below ``max_g_per_kwh``.

    :param max_g_per_kwh: the threshold, gCO2e/kWh (> 0); the figure is the source's for the current interval.
    :param location: where the work will draw its energy (any form the bundled table knows: ``"DE"``,
        ``"US-CA"``, ``"gcp:europe-west4"``), mapped to the source's zone; templated.
    :param intensity_zone: the source's zone or region itself (``"DE"``, ``"CAISO_NORTH"``, a GB region id or
        outward postcode), overriding ``location``; templated. One of the two is needed.
    :param intensity_conn_id: the Connection of the live source (types electricitymaps, watttime,
        uk_carbon_intensity); default ``[carbon] intensity_conn_id``. WattTime gives grams only where the
        account has forecasts (a free one: CAISO_NORTH); elsewhere each look fails with a 403 and the sensor
        times out naming it: a percentile is never taken for grams.
    :param poke_interval: time between two looks, a timedelta or s (default 300 s), in every mode.
    :param timeout: how long to wait before failing (``soft_fail``: skipping), a timedelta or s (BaseSensorOperator's).
    :param deferrable: wait in the triggerer (default) rather than on a worker.

    Bad values raise ValueError when the DAG is parsed, naming the value; a templated one is checked once
    rendered. A source that fails (a 503, a timeout) never ends the wait: it warns and looks again, and the
    timeout's message names the last figure and the last failure. The XCom is the figure it succeeded on:
    ``{"g_per_kwh", "max_g_per_kwh", "at", "estimated", "source", "signal", "zone", "conn_id", "status"}``.
    """

    template_fields: Sequence[str] = ("location", "intensity_zone")
    ui_color = "#d9ead3"

    def __init__(self, *, max_g_per_kwh: float, location: str | None = None, intensity_zone: str | None = None,
                 intensity_conn_id: str | None = None, poke_interval: timedelta | float = DEFAULT_POKE_INTERVAL_S,
                 deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.max_g_per_kwh: float = validate(MAX_G_PER_KWH, max_g_per_kwh)
        if location is None and intensity_zone is None:
            raise ValueError("CarbonIntensitySensor needs location (e.g. 'DE', 'US-CA', 'gcp:europe-west4') "
                             "or intensity_zone (the source's zone, e.g. 'DE', 'CAISO_NORTH'); neither was given")
        self.location = location if location is None or is_template(location) else validate_many({"location": location})["location"]
        self.intensity_zone = intensity_zone if is_template(intensity_zone) else validate("intensity_zone", intensity_zone)
        if intensity_conn_id is None:
            from airflow_carbon.settings import read_config

            intensity_conn_id = read_config(["intensity_conn_id"])["intensity_conn_id"]
            if intensity_conn_id is None:
                raise ValueError("CarbonIntensitySensor needs intensity_conn_id (or [carbon] intensity_conn_id): the "
                                 "Connection of a live source (types electricitymaps, watttime, uk_carbon_intensity)")
        self.intensity_conn_id: str = validate("intensity_conn_id", intensity_conn_id)
        if self.poke_interval <= 0:
            raise ValueError(f"poke_interval={poke_interval!r} is invalid; expected a timedelta or seconds > 0 "
                             f"(default {DEFAULT_POKE_INTERVAL_S:g} s)")
        self.deferrable = deferrable
        self._spec: LiveSpec | None = None
        self._zone: str | None = None
        self._client: Any = None
        self._last_g: float | None = None
        self._last_at: str | None = None
        self._last_error: str | None = None

    # -- running ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any] | None:
        """Resolve the zone (the Connection is read here, on the worker), look once, then defer or poke."""
        from airflow_carbon.hooks.grid_intensity import live_spec

        self._spec = live_spec(self.intensity_conn_id)
        self._zone = self._resolve_zone(self._spec)
        self._client = self._spec.client()
        try:
            if not self.deferrable:
                try:
                    return super().execute(context)
                except AirflowSensorTimeout as exc:
                    raise AirflowSensorTimeout(f"{exc} {_last_words(self._last_g, self._last_at, self._last_error)}") from None
            if (event := self._look()) is not None:  # clean already: no deferral
                return event
        finally:
            self._client.close()
            self._client = None
        end_at = utc_iso(time.time() + self.timeout)
        self.log.info("%s: deferring until a figure <= %g gCO2e/kWh, or until %s", self._place, self.max_g_per_kwh, end_at)
        trigger = CarbonIntensityTrigger(intensity_conn_id=self.intensity_conn_id, zone=self._zone, max_g_per_kwh=self.max_g_per_kwh,
                                         poll_interval_s=self.poke_interval, end_at=end_at)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout + DEFER_GRACE_S))

    def poke(self, context: Context) -> PokeReturnValue:
        """One look at the current figure (sync client); done when it is at or below the threshold."""
        event = self._look()
        return PokeReturnValue(event is not None, event)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The trigger's event: the figure (returned: the XCom), or the timeout (AirflowSensorTimeout; skipped
        with ``soft_fail``), or a Connection the triggerer could not use (AirflowException)."""
        status = event.get("status")
        where = place_words(event.get("source"), event.get("zone"))
        if status == "success":
            self.log.info("%s: %g gCO2e/kWh <= %g (the figure for %s)", where, event["g_per_kwh"], event["max_g_per_kwh"], event["at"])
            return event
        if status == "timeout":
            last = _last_words(event.get("last_g_per_kwh"), event.get("last_at"), event.get("last_error"))
            message = (f"{where}: no figure at or below {self.max_g_per_kwh:g} gCO2e/kWh before {event.get('end_at')} "
                       f"(timeout {self.timeout:g} s); {last}")
            if self.soft_fail or self.never_fail:
                self.log.warning("%s", message)  # the skip's own message does not say why
            raise AirflowSensorTimeout(message)
        raise AirflowException(str(event.get("message") or f"unexpected event from the trigger: {event!r}"))

    # -- internals --------------------------------------------------------------------------------
    @property
    def _place(self) -> str:
        """Where this sensor looks, for its log lines."""
        return place_words(self._spec.source if self._spec else None, self._zone)

    def _resolve_zone(self, spec: LiveSpec) -> str | None:
        """``intensity_zone`` as rendered, else the source's zone of ``location`` (ZoneError, a ValueError, naming it)."""
        from airflow_carbon.core.zones import zone_for

        if self.intensity_zone is not None:
            return validate("intensity_zone", self.intensity_zone).strip()
        location = validate_many({"location": self.location})["location"]
        return zone_for(spec.source, location)

    def _look(self) -> dict[str, Any] | None:
        """The success payload where the current figure is at or below the threshold, else None (a SourceError
        is warned about and remembered; a ValueError, a zone or credential the client refuses, is raised)."""
        assert self._spec is not None
        try:
            figure = current(self._spec, self._zone, client=self._client)
        except SourceError as exc:
            self._last_error = failure_reason(exc, self._spec.source)
            self.log.warning("%s: no figure (%s); looking again in %g s", self._place, self._last_error, self.poke_interval)
            return None
        self._last_g, self._last_at = figure.g_per_kwh, utc_iso(figure.start_s)
        if figure.g_per_kwh > self.max_g_per_kwh:
            self.log.info("%s: %g gCO2e/kWh > %g", self._place, figure.g_per_kwh, self.max_g_per_kwh)
            return None
        self.log.info("%s: %g gCO2e/kWh <= %g (the figure for %s)", self._place, figure.g_per_kwh, self.max_g_per_kwh, self._last_at)
        return figure_event(figure, self._spec, self._zone, self.max_g_per_kwh)


def _last_words(last_g: float | None, last_at: str | None, last_error: str | None) -> str:
    """What the last looks saw: the last figure (gCO2e/kWh) and the last failure."""
    words = f"last figure {last_g:g} gCO2e/kWh (for {last_at})" if last_g is not None else "no figure was read"
    return words + (f"; last failure: {last_error}" if last_error else "")
