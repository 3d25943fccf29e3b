"""Aggregates over records, the same for every view: totals (g CO2e, kWh), the hardware (device counts)
and the grid locations of a set of records, one line per try, and the flat per-task-instance summary.
Pure: no Airflow.

The UI sums :func:`task_summary` objects over thousands of task instances inside the database (one JSON
object per task instance, flat keys), instead of decoding every try's full record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_carbon.core.record import COMPONENTS, Record, device_counts, format_hardware, sort_key
from airflow_carbon.core.units import J_PER_KWH

SUMMARY_VERSION = 1


def hardware_counts(records: Iterable[Record]) -> dict[str, int]:
    """Distinct hardware across the records, device name -> count: GPUs by UUID per host, then CPU
    sockets by host, each most used first (e.g. {'NVIDIA A100-SXM4-80GB': 8, 'AMD EPYC 7763': 2}), by the
    records' hardware rule (:func:`~airflow_carbon.core.record.device_counts`)."""
    gpus: dict[tuple[str, str], str] = {}
    cpus: dict[str, tuple[str, int]] = {}
    for r in records:
        for g in r["gpus"]:
            gpus[(r["host"], g["uuid"])] = g["name"]
        cpu = r["components"]["cpu"]
        if "model" in cpu:
            cpus[r["host"]] = (cpu["model"], cpu.get("sockets", 1))
    return device_counts(gpus.values(), cpus.values())


def hardware_used(records: Iterable[Record]) -> str:
    """Distinct hardware across the records (:func:`hardware_counts`), as the card writes it."""
    return format_hardware(hardware_counts(records))


def geographical_location(records: Iterable[Record]) -> str:
    """The grid locations the energy was drawn in, as granular as known (e.g. 'Quebec, Canada')."""
    names = sorted({r["intensity"]["name"] for r in records})
    return "; ".join(names)


def totals(records: list[Record]) -> dict[str, Any]:
    """Emissions (g CO2e) and energy (kWh, total and by component) over every record."""
    by_component = {name: sum(r["components"][name]["energy_kwh"] or 0.0 for r in records) for name in COMPONENTS}
    return {
        "emissions_g": sum(r["emissions_g"] for r in records),
        "energy_kwh": sum(r["energy_kwh"] for r in records),
        "energy_kwh_by_component": by_component,
        "tries": len(records),
        "failed_tries": sum(1 for r in records if r.get("status") not in (None, "success")),
    }


def breakdown(records: list[Record]) -> list[dict[str, Any]]:
    """One line per task try: identity, status, energy (J) by component with method, grams CO2e."""
    rows = []
    for r in sorted(records, key=sort_key):
        c = r["components"]
        rows.append({
            **{k: r["task"][k] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")},
            "status": r.get("status"),
            "energy_j": {k: (None if c[k]["energy_kwh"] is None else c[k]["energy_kwh"] * J_PER_KWH) for k in COMPONENTS},
            "methods": {k: c[k]["method"] for k in COMPONENTS},
            "emissions_g": r["emissions_g"],
        })
    return rows


def task_summary(records: list[Record]) -> dict[str, Any]:
    """Totals over ``records`` (the tries of one task instance): ``emissions_g`` (g CO2e), ``energy_kwh``
    and ``gpu_kwh`` / ``cpu_kwh`` / ``ram_kwh`` (kWh, before PUE; a missing component counts 0),
    ``duration_s`` (s, all tries), ``tries``, ``failed_tries``, the last try's ``status`` and ``hostname``,
    ``hardware`` (device name -> count, :func:`hardware_counts`),
    ``location`` (grid location names) and ``g_per_kwh`` (gCO2e/kWh, the last try's intensity). Where the
    task acts on the numbers (0.3.0; absent otherwise): ``avoided_g`` (g, the tries' avoided grams that are
    known), ``waited_s`` (s, carbon-aware waits) and ``budget_exceeded`` / ``budget_action`` (the last try's)."""
    if not records:
        raise ValueError("no records to summarise")
    total = totals(records)
    by_component = total.pop("energy_kwh_by_component")
    last = max(records, key=lambda r: r.get("task", {}).get("try_number", 0))
    return {
        "summary_version": SUMMARY_VERSION,
        **total,
        **{f"{name}_kwh": kwh for name, kwh in by_component.items()},
        "duration_s": sum(r["duration_s"] for r in records),
        "status": last.get("status"),
        "hostname": last.get("task", {}).get("hostname") or last["host"],
        "hardware": hardware_counts(records),
        "location": geographical_location(records),
        "g_per_kwh": last["intensity"]["g_per_kwh"],
        **_acting(records, last),
    }


def _acting(records: list[Record], last: Record) -> dict[str, Any]:
    """The summary's carbon-aware start and budget fields, for the tasks that have them."""
    out: dict[str, Any] = {}
    shifts = [r["shift"] for r in records if "shift" in r]
    if shifts:
        avoided = [s["avoided_g"] for s in shifts if s.get("avoided_g") is not None]
        out["avoided_g"] = sum(avoided) if avoided else None
        out["waited_s"] = sum(s["waited_s"] for s in shifts)
    if "budget" in last:
        out["budget_exceeded"] = last["budget"]["exceeded"]
        out["budget_action"] = last["budget"]["action"]
    return out
