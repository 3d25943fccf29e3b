"""Figures for people: units picked for readability, always stated. Pure: no Airflow."""

from __future__ import annotations

from airflow_carbon.core.units import J_PER_KWH


def _sig(value: float, digits: int = 3) -> str:
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.{digits - 1}e}"


def emissions(grams: float | None) -> str:
    """Grams of CO2e as 'mg CO2e', 'g CO2e', 'kg CO2e' or 't CO2e', three significant digits."""
    if grams is None:
        return "missing"
    for limit, unit, scale in ((1e6, "t", 1e-6), (1e3, "kg", 1e-3), (1.0, "g", 1.0)):
        if abs(grams) >= limit:
            return f"{_sig(grams * scale)} {unit} CO2e"
    if grams == 0:
        return "0 g CO2e"
    return f"{_sig(grams * 1e3)} mg CO2e"


def energy(kwh: float | None) -> str:
    """Energy from kWh as 'MWh', 'kWh', 'Wh' or 'J' (below 1 Wh), three significant digits."""
    if kwh is None:
        return "missing"
    if abs(kwh) >= 1e3:
        return f"{_sig(kwh / 1e3)} MWh"
    if abs(kwh) >= 1.0:
        return f"{_sig(kwh)} kWh"
    if abs(kwh) >= 1e-3:
        return f"{_sig(kwh * 1e3)} Wh"
    return f"{_sig(kwh * J_PER_KWH)} J"


def joules(energy_j: float | None) -> str:
    """Energy given in J, shown as :func:`energy` shows it."""
    return energy(None if energy_j is None else energy_j / J_PER_KWH)


def power(watts: float | None) -> str:
    """Power in W ('kW' from 1 kW)."""
    if watts is None:
        return "n/a"
    return f"{_sig(watts / 1e3)} kW" if abs(watts) >= 1e3 else f"{_sig(watts)} W"


def duration(seconds: float | None) -> str:
    """Seconds as '42.1 s', '12 min 5 s' or '3 h 4 min'."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{_sig(seconds)} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min"


def intensity(g_per_kwh: float | None) -> str:
    """Grid carbon intensity in g CO2e/kWh."""
    return "n/a" if g_per_kwh is None else f"{_sig(g_per_kwh, 4)} g CO2e/kWh"
