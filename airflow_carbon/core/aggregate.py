"""Aggregates over records, the same for every view: totals (g CO2e, kWh), the hardware (device counts)
and the grid locations of a set of records, one line per try, and the flat per-task-instance summary.
Pure: no Airflow.

The UI sums :func:`task_summary` objects over thousands of task instances inside the database (one JSON
object per task instance, flat keys), instead of decoding every try's full record.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from airflow_carbon.core.units import J_PER_KWH

SUMMARY_VERSION = 1


def hardware_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Distinct hardware across the records, device name -> count: GPUs by UUID per host, then CPU
    sockets by host, each most used first (e.g. {'NVIDIA A100-SXM4-80GB': 8, 'AMD EPYC 7763': 2})."""
    gpus: dict[tuple[str, str], str] = {}
    cpus: dict[str, tuple[str, int]] = {}
    for r in records:
        for g in r["gpus"]:
            gpus[(r["host"], g["uuid"])] = g["name"]
        cpu = r["components"]["cpu"]
        if "model" in cpu:
            cpus[r["host"]] = (cpu["model"], cpu.get("sockets", 1))
    cpu_counts: Counter[str] = Counter()
    for model, sockets in cpus.values():
        cpu_counts[model] += sockets
    return dict([*Counter(gpus.values()).most_common(), *cpu_counts.most_common()])


def format_hardware(counts: dict[str, int]) -> str:
    """Device counts as the card writes them: '8 x NVIDIA A100-SXM4-80GB, 2 x AMD EPYC 7763'."""
    return ", ".join(f"{n} x {name}" for name, n in counts.items())


def hardware_used(records: Iterable[dict[str, Any]]) -> str:
    """Distinct hardware across the records (:func:`hardware_counts`), as the card writes it."""
    return format_hardware(hardware_counts(records))


def geographical_location(records: Iterable[dict[str, Any]]) -> str:
    """The grid locations the energy was drawn in, as granular as known (e.g. 'Quebec, Canada')."""
    names = sorted({r["intensity"]["name"] for r in records})
    return "; ".join(names)


def totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Emissions (g CO2e) and energy (kWh, total and by component) over every record."""
    by_component = {
        name: sum(r["components"][name]["energy_kwh"] or 0.0 for r in records) for name in ("gpu", "cpu", "ram")
    }
    return {
        "emissions_g": sum(r["emissions_g"] for r in records),
        "energy_kwh": sum(r["energy_kwh"] for r in records),
        "energy_kwh_by_component": by_component,
        "tries": len(records),
        "failed_tries": sum(1 for r in records if r.get("status") not in (None, "success")),
    }


def breakdown(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per task try: identity, status, energy (J) by component with method, grams CO2e."""
    rows = []
    for r in sorted(records, key=lambda r: (r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"], r["task"]["run_id"])):
        rows.append({
            **{k: r["task"][k] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")},
            "status": r.get("status"),
            "energy_j": {k: (None if c["energy_kwh"] is None else c["energy_kwh"] * J_PER_KWH) for k, c in r["components"].items()},
            "methods": {k: c["method"] for k, c in r["components"].items()},
            "emissions_g": r["emissions_g"],
        })
    return rows


def task_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over ``records`` (the tries of one task instance): ``emissions_g`` (g CO2e), ``energy_kwh``
    and ``gpu_kwh`` / ``cpu_kwh`` / ``ram_kwh`` (kWh, before PUE; a missing component counts 0),
    ``duration_s`` (s, all tries), ``tries``, ``failed_tries``, the last try's ``status`` and ``hostname``,
    ``hardware`` (device name -> count, :func:`~airflow_carbon.card.metadata.hardware_counts`),
    ``location`` (grid location names) and ``g_per_kwh`` (gCO2e/kWh, the last try's intensity)."""
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
    }
