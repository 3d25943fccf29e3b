"""Airflow layer: the `[carbon]` configuration section, merged with a task's own arguments.

Every option can also be set as ``AIRFLOW__CARBON__<OPTION>``. Values are validated when a DAG file
is parsed, so a bad location or PUE is an import error that names the value, not a failed run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from airflow_carbon.card.metadata import validate_training_type
from airflow_carbon.core.emissions import DEFAULT_PUE, validate_pue
from airflow_carbon.core.intensity import resolve_intensity
from airflow_carbon.provider import CONFIG_OPTIONS
from airflow_carbon.core.meter import DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_SAMPLING_INTERVAL_S, EnergyMeter, validate_interval_s

SECTION = "carbon"


def _conf(option: str) -> str:
    from airflow.sdk import conf

    # defaults are declared once, in provider.py
    return (conf.get(SECTION, option, fallback=CONFIG_OPTIONS[option][1]) or "").strip()


def _float_or_none(option: str, text: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"[{SECTION}] {option} = {text!r} is not a number") from None


@dataclass(frozen=True)
class CarbonSettings:
    """What a tracked task measures with: validated, JSON-friendly."""

    location: str | None = None
    g_per_kwh: float | None = None
    pue: float = DEFAULT_PUE
    sampling_interval_s: float = DEFAULT_SAMPLING_INTERVAL_S
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    training_type: str | None = None
    gpu_queue: str | None = None

    @classmethod
    def from_config(cls) -> CarbonSettings:
        """The `[carbon]` section's values."""
        return cls(
            location=_conf("location") or None,
            g_per_kwh=_float_or_none("g_per_kwh", _conf("g_per_kwh")),
            pue=_float_or_none("pue", _conf("pue")) or DEFAULT_PUE,
            sampling_interval_s=_float_or_none("sampling_interval_s", _conf("sampling_interval_s")) or DEFAULT_SAMPLING_INTERVAL_S,
            checkpoint_interval_s=_float_or_none("checkpoint_interval_s", _conf("checkpoint_interval_s")) or DEFAULT_CHECKPOINT_INTERVAL_S,
            gpu_queue=_conf("gpu_queue") or None,
        )

    def merged(self, **overrides: Any) -> CarbonSettings:
        """These settings with a task's own arguments (None means "not given") applied, then validated."""
        settings = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ValueError naming any bad value (a DAG import error when called at parse time)."""
        if self.location is None or "{{" not in self.location:  # a templated location is checked at run time
            resolve_intensity(self.location, self.g_per_kwh)
        validate_pue(self.pue)
        validate_interval_s("sampling_interval_s", self.sampling_interval_s, 0.001, 60)
        validate_interval_s("checkpoint_interval_s", self.checkpoint_interval_s, 1, 86_400)
        if self.training_type is not None:
            validate_training_type(self.training_type)

    def meter(self, **kwargs: Any) -> EnergyMeter:
        """An EnergyMeter with these settings."""
        return EnergyMeter(
            location=self.location,
            g_per_kwh=self.g_per_kwh,
            pue=self.pue,
            sampling_interval_s=self.sampling_interval_s,
            checkpoint_interval_s=self.checkpoint_interval_s,
            **kwargs,
        )


def auto_track_filter() -> tuple[bool, set[str], set[str]]:
    """(enabled, queues, pools) of the listener's automatic tracking."""
    from airflow.sdk import conf

    enabled = conf.getboolean(SECTION, "auto_track", fallback=False)
    split = lambda text: {part.strip() for part in text.split(",") if part.strip()}  # noqa: E731
    return enabled, split(_conf("auto_track_queues")), split(_conf("auto_track_pools"))
