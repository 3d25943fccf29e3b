"""Emissions math: grams of CO2e from energy, PUE and grid intensity."""

from __future__ import annotations

from airflow_carbon.core.options import OPTION, validate

DEFAULT_PUE: float = OPTION["pue"].default
"""Power usage effectiveness applied when none is configured: the IT energy only, no facility overhead."""


def validate_pue(pue: object) -> float:
    """Return ``pue`` as a float, or raise ValueError naming the value: a finite number >= 1.0 (or its text).

    PUE is a ratio (facility energy / IT energy), so it cannot be below 1.0. Typical values: 1.1 for
    hyperscale clouds, 1.5-1.6 for an average data centre. The bound is the option table's
    (:data:`airflow_carbon.core.options.OPTIONS`).
    """
    return validate("pue", pue)


def emissions_g(energy_kwh: float, g_per_kwh: float, pue: float = DEFAULT_PUE) -> float:
    """Grams of CO2e for ``energy_kwh`` (kWh of IT energy) at ``g_per_kwh`` (gCO2e/kWh) and ``pue``."""
    return energy_kwh * pue * g_per_kwh
