"""Unit conversions, in one place: energy in J and kWh, power in W and mW, memory in bytes and GB,
grid intensity in gCO2e/kWh and lbs CO2/MWh."""

from __future__ import annotations

from datetime import datetime, timezone

J_PER_KWH = 3.6e6
"""Joules in one kilowatt-hour."""

BYTES_PER_GB = 1e9
"""Bytes in one (decimal) gigabyte: the records' GB."""

BYTES_PER_GIB = 1024**3
"""Bytes in one gibibyte: the "GB" of CodeCarbon's ``ram_total_size`` and ``ram_used_gb`` (the CSV export)."""


G_PER_KWH_PER_LBS_PER_MWH = 0.45359237
"""gCO2e/kWh in one lb CO2/MWh (WattTime's unit): 1 lb = 453.59237 g and 1 MWh = 1000 kWh."""


def lbs_per_mwh_to_g_per_kwh(intensity_lbs_per_mwh: float) -> float:
    """Convert grid intensity from lbs CO2/MWh to gCO2e/kWh."""
    return intensity_lbs_per_mwh * G_PER_KWH_PER_LBS_PER_MWH


def j_to_kwh(energy_j: float) -> float:
    """Convert energy from J to kWh."""
    return energy_j / J_PER_KWH


def kwh_to_j(energy_kwh: float) -> float:
    """Convert energy from kWh to J."""
    return energy_kwh * J_PER_KWH


def mj_to_j(energy_mj: float) -> float:
    """Convert energy from mJ (NVML's counter unit) to J."""
    return energy_mj / 1000.0


def mw_to_w(power_mw: float) -> float:
    """Convert power from mW (NVML's power unit) to W."""
    return power_mw / 1000.0


def uj_to_j(energy_uj: float) -> float:
    """Convert energy from µJ (RAPL's unit) to J."""
    return energy_uj / 1e6


def utc_iso(epoch_s: float) -> str:
    """Unix seconds as the records' UTC ISO 8601 time, to the millisecond: ``2026-12-03T10:00:00.000Z``."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
