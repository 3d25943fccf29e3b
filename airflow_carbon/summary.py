"""One flat summary of a task instance's records (all its tries), for indexes and totals. Pure: no Airflow.

The UI sums these over thousands of task instances inside the database (one JSON object per task
instance, flat keys), instead of decoding every try's full record.
"""

from __future__ import annotations

from typing import Any

from airflow_carbon.card_metadata import geographical_location, hardware_counts, totals

SUMMARY_VERSION = 1


def task_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over ``records`` (the tries of one task instance): ``emissions_g`` (g CO2e), ``energy_kwh``
    and ``gpu_kwh`` / ``cpu_kwh`` / ``ram_kwh`` (kWh, before PUE; a missing component counts 0),
    ``duration_s`` (s, all tries), ``tries``, ``failed_tries``, the last try's ``status`` and ``hostname``,
    ``hardware`` (device name -> count, :func:`~airflow_carbon.card_metadata.hardware_counts`),
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
