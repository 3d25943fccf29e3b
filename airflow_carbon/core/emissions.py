"""Emissions math: grams of CO2e from energy, PUE and grid intensity."""

from __future__ import annotations

import math

DEFAULT_PUE = 1.0
"""Power usage effectiveness applied when none is configured: the IT energy only, no facility overhead."""


def validate_pue(pue: object) -> float:
    """Return ``pue`` as a float, or raise ValueError naming the value: a finite number >= 1.0 is accepted.

    PUE is a ratio (facility energy / IT energy), so it cannot be below 1.0. Typical values: 1.1 for
    hyperscale clouds, 1.5-1.6 for an average data centre.
    """
    if isinstance(pue, bool):
        raise ValueError(f"pue={pue!r} is not a number; expected a finite number >= 1.0 (e.g. 1.1)")
    if not isinstance(pue, (int, float)):
        try:
            pue = float(pue)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"pue={pue!r} is not a number; expected a finite number >= 1.0 (e.g. 1.1)") from None
    if not math.isfinite(pue) or pue < 1.0:
        raise ValueError(f"pue={pue!r} is invalid; expected a finite number >= 1.0 (e.g. 1.1)")
    return float(pue)


def emissions_g(energy_kwh: float, g_per_kwh: float, pue: float = DEFAULT_PUE) -> float:
    """Grams of CO2e for ``energy_kwh`` (kWh of IT energy) at ``g_per_kwh`` (gCO2e/kWh) and ``pue``."""
    return energy_kwh * pue * g_per_kwh
