"""Figures for people: units picked for readability, always stated. Pure: no Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_carbon.core.live import SOURCES
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


def attribution(gpu: dict) -> str:
    """How a GPU entry's energy was attributed, in words: '' for an entry without sharing fields (older
    records), else e.g. 'equal split with 1 other window: 75 % of the 1.8 kJ the GPU drew'."""
    how = gpu.get("attribution")
    if how is None:
        return ""
    if how == "exclusive":
        return "alone on the GPU: its whole energy"
    share, device = gpu.get("share"), joules(gpu.get("device_energy_j"))
    part = f"{100 * share:.0f} % of the {device} the GPU drew" if share is not None else f"part of the {device} the GPU drew"
    if how == "mig-allocation":
        return f"MIG slices' share: {part}; an allocation, not a measurement (NVML has no per-instance power)"
    others = max(0, int(gpu.get("concurrent_windows") or 1) - 1)
    label = "equal split" if how == "equal-split" else "per-process SM utilisation"
    return f"{label} with up to {others} other window{'s' if others != 1 else ''}: {part}"


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


def _live_zone(source: str, zone: str) -> str:
    if source == "uk_carbon_intensity":
        return f"region {zone}" if zone.isdigit() else f"postcode {zone}"
    if source == "watttime":
        return zone  # a WattTime region says what it is: CAISO_NORTH
    return f"zone {zone}"


def _live_basis(source: str, intensity: Mapping[str, Any]) -> list[str]:
    if source == "uk_carbon_intensity":
        return ["operational"]  # the GB API's figures: combustion at the plants only, of the grid's mix
    if source == "watttime":
        return [str(intensity["signal"])] if intensity.get("signal") else []  # MOER: marginal, and direct only
    return [str(intensity[k]) for k in ("signal", "emission_factor") if intensity.get(k)]


def intensity_source(intensity: Mapping[str, Any]) -> str:
    """Where a try's g/kWh came from, in a line: 'live: Electricity Maps, zone FR (average, lifecycle)',
    'live: WattTime, CAISO_NORTH (marginal)', 'live: GB Carbon Intensity (operational)' for a live source;
    'bundled: France (Our World in Data ..., 2023)' for the bundled table's figure (a try whose live
    source failed entirely too); 'explicit: ...' for a figure the task set; 'world average (...)'."""
    method = intensity.get("method")
    if method == "live":
        source = str(intensity.get("live_source") or "unknown source")
        text = f"live: {SOURCES[source].short_name if source in SOURCES else source}"
        if intensity.get("zone"):
            text += f", {_live_zone(source, str(intensity['zone']))}"
        basis = _live_basis(source, intensity)
        return text + (f" ({', '.join(basis)})" if basis else "")
    cited = ", ".join(str(p) for p in (intensity.get("source"), intensity.get("year")) if p)
    name = intensity.get("name") or intensity.get("location") or "unnamed grid"
    if method == "dataset":
        return f"bundled: {name}" + (f" ({cited})" if cited else "")
    if method == "explicit":
        return f"explicit: {name}"
    if method == "world-average":
        return "world average" + (f" ({cited})" if cited else "")
    return f"{method or 'unknown method'}: {name}" + (f" ({cited})" if cited else "")


def fallback_extent(intensity: Mapping[str, Any]) -> str | None:
    """How much of a try the bundled figure stood in for, where its live source failed: None when it did not."""
    if not intensity.get("fallback"):
        return None
    return "part of this try: the segments whose source is the bundled table" if intensity.get("method") == "live" else "all of this try"


def utc_time(iso: str | None) -> str:
    """A record's UTC ISO 8601 time as 'YYYY-MM-DD HH:MM:SS' (the page says UTC)."""
    return "" if not iso else iso[:19].replace("T", " ")


# -- acting on the numbers: carbon-aware starts and budgets -------------------------------------------
def avoided(grams: float | None) -> str:
    """Grams avoided by a carbon-aware start, with their sign: '1.2 g CO2e', '-300 mg CO2e (the wait cost
    more)', or 'unknown' (None: not 0)."""
    if grams is None:
        return "unknown"
    return f"{emissions(grams)} (the wait cost more)" if grams < 0 else emissions(grams)


def waited(shift: Mapping[str, Any] | None) -> str:
    """A try's carbon-aware start in a few words: 'waited 42 s' where it deferred, else 'started at once'
    ('' for a try with none)."""
    if not shift:
        return ""
    return f"waited {duration(shift.get('waited_s'))}" if shift.get("deferred") else "started at once"


def known_of(known: int, total: int, what: str) -> str:
    """'2 of 3 tries with a known figure; unknown ones are not counted as 0', '1 of 1 task instance with a known figure'."""
    plural = what if total == 1 else f"{what[:-1]}ies" if what.endswith("y") else f"{what}s"
    return f"{known} of {total} {plural} with a known figure" + ("" if known == total else "; unknown ones are not counted as 0")


def budget_limits(budget: Mapping[str, Any]) -> str:
    """A task's budgets: '0.001 mg CO2e', '72 J', '1 g CO2e and 2 Wh', or 'none set'."""
    parts = [emissions(budget["co2_g"])] if budget.get("co2_g") is not None else []
    if budget.get("energy_kwh") is not None:
        parts.append(energy(budget["energy_kwh"]))
    return " and ".join(parts) or "none set"


BUDGET_ACTIONS = {"stop": "stopped", "warn": "warned", "none": "no action"}


def budget_status(budget: Mapping[str, Any] | None, *, exceeded: bool | None = None, action: str | None = None) -> str:
    """'exceeded: stopped', 'exceeded: warned', 'exceeded', 'within budget' (from a record's ``budget``, or
    a summary's ``budget_exceeded`` and ``budget_action``); '' where there is no budget."""
    if budget is not None:
        exceeded, action = budget.get("exceeded"), budget.get("action")
    if exceeded is None:
        return ""
    if not exceeded:
        return "within budget"
    return f"exceeded: {BUDGET_ACTIONS[action]}" if action in ("stop", "warn") else "exceeded"
