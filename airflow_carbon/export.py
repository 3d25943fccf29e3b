"""Records as files for other tools: CodeCarbon's ``emissions.csv`` columns. Pure: no Airflow."""

from __future__ import annotations

import csv
import io
import platform
from typing import Any

from airflow_carbon.units import J_PER_KWH

# CodeCarbon's emissions.csv columns and units (kg CO2e, kWh, W, s), so its tooling reads our export.
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "on_cloud", "pue",
]


def records_csv(records: list[dict[str, Any]]) -> bytes:
    """The records as CodeCarbon's emissions.csv (one row per task try)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        c, t, d = r["components"], r["task"], max(r["duration_s"], 1e-9)
        kwh = {k: c[k]["energy_kwh"] or 0.0 for k in ("cpu", "gpu", "ram")}
        location = r["intensity"].get("location") or ""
        writer.writerow({
            "timestamp": r["ended_at"], "project_name": t["dag_id"], "run_id": t["run_id"],
            "experiment_id": f"{t['task_id']}[{t['map_index']}]#{t['try_number']}", "duration": r["duration_s"],
            "emissions": r["emissions_g"] / 1000, "emissions_rate": r["emissions_g"] / 1000 / d,
            **{f"{k}_power": kwh[k] * J_PER_KWH / d for k in kwh}, **{f"{k}_energy": kwh[k] for k in kwh},
            "energy_consumed": r["energy_kwh"], "country_name": r["intensity"]["name"],
            "country_iso_code": location if len(location) in (2, 3) else "", "region": location if "-" in location else "",
            "cloud_provider": location.split(":")[0] if ":" in location else "",
            "cloud_region": location.split(":")[1] if ":" in location else "", "os": platform.platform(),
            "python_version": platform.python_version(), "codecarbon_version": "", "cpu_count": c["cpu"].get("sockets", ""),
            "cpu_model": c["cpu"].get("model", ""), "gpu_count": len(r["gpus"]),
            "gpu_model": ", ".join(sorted({g["name"] for g in r["gpus"]})), "longitude": "", "latitude": "",
            "ram_total_size": c["ram"].get("mean_rss_gb", ""), "tracking_mode": "process", "on_cloud": "Y" if ":" in location else "N",
            "pue": r["pue"],
        })
    return out.getvalue().encode("utf-8")
