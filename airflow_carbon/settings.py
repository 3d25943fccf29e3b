"""Airflow layer: the `[carbon]` configuration section, merged with a task's own arguments.

Every option is declared once, in the option table (:data:`airflow_carbon.core.options.OPTIONS`): its
type, default and bounds. Each option can also be set as ``AIRFLOW__CARBON__<OPTION>``. Values are
validated when a DAG file is parsed, so a bad location or PUE is an import error that names the value,
not a failed run; a bad configured value is such an error too (``[carbon] pue = '0' is invalid; ...``),
never a silent default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from airflow_carbon.core.intensity import GridIntensity
from airflow_carbon.core.live import LiveIntensity
from airflow_carbon.core.meter import EnergyMeter
from airflow_carbon.core.options import OPTION, SECTION, default_text, options_in, parse_config, validate_many

LISTENER_OPTIONS = ("auto_track", "auto_track_queues", "auto_track_pools")
"""The listener's filter: read only by :func:`auto_track_filter`, not part of a task's settings."""


def read_config(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The ``[carbon]`` values of ``names`` (the config's, else the environment's, else the defaults),
    parsed and validated by the option table; a bad one raises ValueError naming it and its text."""
    from airflow.sdk import conf

    return parse_config({name: conf.get(SECTION, name, fallback=default_text(name)) or "" for name in names})


def _default(name: str) -> Any:
    return OPTION[name].default


@dataclass(frozen=True)
class CarbonSettings:
    """What a tracked task measures with: validated, JSON-friendly. One field per option of the table
    that a task or the ``[carbon]`` section sets (the listener's filter aside), with the table's default."""

    location: str | None = _default("location")
    g_per_kwh: float | None = _default("g_per_kwh")
    pue: float = _default("pue")
    intensity_conn_id: str | None = _default("intensity_conn_id")
    intensity_zone: str | None = _default("intensity_zone")
    intensity_cache_dir: str | None = _default("intensity_cache_dir")
    state_dir: str | None = _default("state_dir")
    start_within: float | None = _default("start_within")
    """s; None: start at once."""
    expected_duration: float | None = _default("expected_duration")
    """s; None: from the task's recent tries."""
    min_saving_pct: float = _default("min_saving_pct")
    co2_budget_g: float | None = _default("co2_budget_g")
    energy_budget_kwh: float | None = _default("energy_budget_kwh")
    on_budget_exceeded: str = _default("on_budget_exceeded")
    budget_grace_s: float = _default("budget_grace_s")
    sampling_interval_s: float = _default("sampling_interval_s")
    checkpoint_interval_s: float = _default("checkpoint_interval_s")
    keep_records_on_clear: bool = _default("keep_records_on_clear")
    training_type: str | None = _default("training_type")
    gpu_queue: str | None = _default("gpu_queue")

    @classmethod
    def from_config(cls) -> CarbonSettings:
        """The `[carbon]` section's values (ValueError naming a bad one)."""
        return cls(**read_config([f.name for f in fields(cls) if "config" in OPTION[f.name].where]))

    def merged(self, **overrides: Any) -> CarbonSettings:
        """These settings with a task's own arguments (None means "not given") applied, then validated
        through the option table (ValueError naming a bad value; TypeError for an unknown name)."""
        settings = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        return replace(settings, **validate_many(asdict(settings)))

    def meter(self, *, live: LiveIntensity | None = None, **kwargs: Any) -> EnergyMeter:
        """An EnergyMeter with these settings and the live source of ``intensity_conn_id``: ``live`` where the try
        has it already, else one whose Connection is looked up now (call this when a try starts, never at parse
        time)."""
        own = {o.name: getattr(self, o.name) for o in options_in("meter") if o.name in self.__dataclass_fields__}
        meter = EnergyMeter(**own, **kwargs)
        if self.intensity_conn_id and self.g_per_kwh is None:  # an explicit g_per_kwh is the user's figure: no lookup
            meter.live = live if live is not None else self.live_intensity(meter.intensity)
        return meter

    def live_intensity(self, fallback: GridIntensity) -> LiveIntensity:
        """The live source of ``intensity_conn_id`` for this location (or ``intensity_zone``), falling back to
        ``fallback``. Never raises: a missing Connection or an unmapped location makes a source that is
        unavailable, whose record says why."""
        from airflow_carbon.core.intensity_cache import IntensityCache
        from airflow_carbon.core.zones import ZoneError, zone_for

        conn_id = self.intensity_conn_id
        assert conn_id is not None
        cache = IntensityCache(self.intensity_cache_dir)
        try:
            from airflow_carbon.hooks.grid_intensity import live_spec

            spec = live_spec(conn_id)
        except Exception as exc:  # no such Connection, or not a live source's
            reason = str(exc) if isinstance(exc, ValueError) else f"Connection {conn_id!r} could not be read ({type(exc).__name__}: {exc})"
            return LiveIntensity(None, None, fallback=fallback, conn_id=conn_id, cache=cache, unavailable=reason)
        try:
            zone = self.intensity_zone or zone_for(spec.source, self.location)
        except ZoneError as exc:
            return LiveIntensity(spec, None, fallback=fallback, cache=cache, unavailable=f"{spec.source}: {exc}")
        return LiveIntensity(spec, zone, fallback=fallback, cache=cache)


def auto_track_filter() -> tuple[bool, set[str], set[str]]:
    """(enabled, queues, pools) of the listener's automatic tracking."""
    values = read_config(LISTENER_OPTIONS)
    return values["auto_track"], set(values["auto_track_queues"]), set(values["auto_track_pools"])
