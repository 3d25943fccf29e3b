"""Records as files for other tools: CodeCarbon's ``emissions.csv``. Pure: no Airflow, pandas or CodeCarbon.

The CSV has the columns of CodeCarbon 3.3.2's ``EmissionsData``, in its order, and is written as its
``FileOutput`` writes them (pandas ``to_csv``: a header row, ``,``, minimal quoting, ``\\n``, floats as
Python's ``repr``, an empty cell for a missing value), one row per record, with CodeCarbon's units and
conventions:

- ``emissions`` kg CO2e; ``emissions_rate`` kg/s; energies kWh and powers W **including PUE**, as
  CodeCarbon applies it, so ``emissions / energy_consumed`` is the grid intensity in kg/kWh;
- ``timestamp``: the record's end, in the local time of the machine writing the file, as
  ``%Y-%m-%dT%H:%M:%S`` (CodeCarbon's ``datetime.now()`` at the end of its run);
- ``country_iso_code`` ISO 3166-1 alpha-3, ``country_name`` and ``region`` as CodeCarbon spells them
  (``california``, ``quebec``, ``se3``); a cloud region goes to ``cloud_provider`` / ``cloud_region``,
  with ``on_cloud`` ``Y`` and its country's fields;
- ``cpu_count`` logical CPUs, ``ram_total_size`` and ``ram_used_gb`` in GiB (CodeCarbon's "GB").

What a record does not hold (water, coordinates, fields older records lack) is left empty, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_carbon.core.intensity import location_entry
from airflow_carbon.core.record import COMPONENTS, Record, device_counts, format_hardware
from airflow_carbon.core.units import BYTES_PER_GB, BYTES_PER_GIB, J_PER_KWH

CODECARBON_VERSION = "3.3.2"
"""The CodeCarbon release whose ``EmissionsData`` fields and ``emissions.csv`` output the export follows."""

CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]
"""CodeCarbon 3.3.2's ``EmissionsData`` fields, in order: the CSV's header."""

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"
"""CodeCarbon's ``timestamp`` format (local time, no zone, whole seconds)."""

TRACKING_MODE = "process"
"""CodeCarbon's ``tracking_mode`` for our figures: RAM and estimated CPU are the measured process tree's."""

Row = dict[str, Any]
"""One CSV row: column -> str, int, float, or None for an empty cell."""


class ExportFiles:
    """``emissions.json`` (the records, a JSON array) and CodeCarbon's ``emissions.csv``, written to the
    folder ``directory`` one record at a time (:meth:`add`), so a run of any size is exported in constant
    memory; :meth:`close` ends them and returns file name -> path."""

    NAMES = ("emissions.json", "emissions.csv")

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.paths = {name: Path(directory) / name for name in self.NAMES}
        self._json = open(self.paths["emissions.json"], "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv_file = open(self.paths["emissions.csv"], "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._csv.writerow(CODECARBON_COLUMNS)
        self._count = 0

    def add(self, record: Record) -> None:
        """Write one record (a dict, or :func:`~airflow_carbon.core.record.decode_record`'s view)."""
        plain = record.to_dict() if hasattr(record, "to_dict") else record
        self._json.write(("[\n" if self._count == 0 else ",\n") + json.dumps(plain, indent=1))
        self._csv.writerow(_csv_cells(codecarbon_row(plain)))
        self._count += 1

    def close(self) -> dict[str, Path]:
        """End the files (a second call does nothing) and return file name -> path."""
        if not self._json.closed:
            self._json.write("[]\n" if self._count == 0 else "\n]\n")
            self._json.close()
            self._csv_file.close()
        return dict(self.paths)


def records_csv(records: Iterable[Record]) -> bytes:
    """The records (CLI or Airflow, validated) as CodeCarbon's ``emissions.csv``, UTF-8, one row each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CODECARBON_COLUMNS)
    for row in codecarbon_rows(records):
        writer.writerow(_csv_cells(row))
    return out.getvalue().encode("utf-8")


def _csv_cells(row: Row) -> list[Any]:
    """A row's cells in CodeCarbon's column order, an empty cell for None."""
    return ["" if row[c] is None else row[c] for c in CODECARBON_COLUMNS]


def codecarbon_rows(records: Iterable[Record]) -> list[Row]:
    """Each record as a row of CodeCarbon's columns (the fields of its ``EmissionsData``)."""
    return [codecarbon_row(r) for r in records]


def codecarbon_row(record: Record) -> Row:
    """One record as CodeCarbon's ``EmissionsData`` fields: units kg, kWh, W, s, %, GiB; PUE included."""
    row: Row = {
        "timestamp": codecarbon_timestamp(record["ended_at"]),
        **_identity(record),
        **_energy(record),
        "water_consumed": None,  # no water accounting (CodeCarbon: energy x WUE, 0 by default)
        **codecarbon_location(record["intensity"].get("location")),
        **_hardware(record),
        "codecarbon_version": None,  # not written by CodeCarbon
        "longitude": None,  # no coordinates in a record (CodeCarbon's offline tracker leaves them empty too)
        "latitude": None,
        "tracking_mode": TRACKING_MODE,
        **_utilization(record),
        "pue": record["pue"],
        "wue": None,
    }
    return {c: row[c] for c in CODECARBON_COLUMNS}


def codecarbon_timestamp(iso_utc: str) -> str:
    """A record's UTC instant (``2026-11-28T13:40:15.121Z``) as CodeCarbon writes it: local, whole seconds."""
    return datetime.fromisoformat(iso_utc).astimezone().strftime(TIMESTAMP_FORMAT)


def _identity(record: Record) -> Row:
    """project_name / run_id / experiment_id: the DAG, its run and the task try; for a record of the CLI or
    of ``EnergyMeter`` (no ``task``), the measuring package, ``host@started_at`` and nothing."""
    task = record.get("task")
    if task:
        experiment = f"{task['task_id']}[{task['map_index']}]#{task['try_number']}"
        return {"project_name": task["dag_id"], "run_id": task["run_id"], "experiment_id": experiment}
    run_id = f"{record['host']}@{record['started_at']}"
    return {"project_name": record["measured_by"]["package"], "run_id": run_id, "experiment_id": None}


def _energy(record: Record) -> Row:
    """Emissions (kg, kg/s), energies (kWh) and mean powers (W), PUE included; a missing component is empty."""
    pue, duration_s = record["pue"], record["duration_s"]
    emissions_kg = record["emissions_g"] / 1000
    row: Row = {
        "duration": duration_s,
        "emissions": emissions_kg,
        "emissions_rate": emissions_kg / duration_s if duration_s > 0 else None,
    }
    energies: dict[str, float | None] = {}
    for name in COMPONENTS:
        it_kwh = record["components"][name]["energy_kwh"]
        energies[name] = None if it_kwh is None else it_kwh * pue
        row[f"{name}_power"] = None if it_kwh is None or duration_s <= 0 else energies[name] * J_PER_KWH / duration_s
    row.update({f"{name}_energy": kwh for name, kwh in energies.items()})
    row["energy_consumed"] = record["energy_kwh"] * pue
    return row


def _hardware(record: Record) -> Row:
    """os, python_version, cpu_count (logical CPUs), cpu_model, gpu_count, gpu_model, ram_total_size (GiB)."""
    cpu, ram, gpus = record["components"]["cpu"], record["components"]["ram"], record["gpus"]
    host_gb = ram.get("host_total_gb")
    return {
        "os": record["measured_by"].get("os"),
        "python_version": record["measured_by"].get("python_version"),
        "cpu_count": cpu.get("logical_cpus"),
        "cpu_model": cpu.get("model"),
        "gpu_count": len(gpus),
        # CodeCarbon's "N x name"; it concatenates several models without a separator, we put ", "
        "gpu_model": format_hardware(device_counts(g["name"] for g in gpus)),
        "ram_total_size": None if host_gb is None else _gb_to_gib(host_gb),
    }


def _utilization(record: Record) -> Row:
    """Mean utilisation (%) of the process tree's CPU and RAM, of the GPUs (NVML), and the tree's RAM (GiB)."""
    cpu, ram = record["components"]["cpu"], record["components"]["ram"]
    sampled = [
        (g["mean_utilization_percent"], g.get("utilization_samples") or 0)
        for g in record["gpus"]
        if g.get("mean_utilization_percent") is not None
    ]
    samples = sum(n for _, n in sampled)
    rss_gb = ram.get("mean_rss_gb")
    return {
        "cpu_utilization_percent": cpu.get("mean_utilization_percent"),
        # CodeCarbon averages every sample of every GPU together: the sample-weighted mean
        "gpu_utilization_percent": sum(u * n for u, n in sampled) / samples if samples else None,
        "ram_utilization_percent": ram.get("mean_utilization_percent"),
        "ram_used_gb": None if rss_gb is None else _gb_to_gib(rss_gb),
    }


def _gb_to_gib(gb: float) -> float:
    return gb * BYTES_PER_GB / BYTES_PER_GIB


# -- locations ------------------------------------------------------------------------------------------
def codecarbon_location(key: str | None) -> Row:
    """CodeCarbon's location columns for a grid-intensity table key (``FR``, ``US-CA``, ``SE3``,
    ``gcp:europe-west1``); empty where the record names no location or the table does not know it."""
    provider, _, cloud_region = key.partition(":") if key and ":" in key else ("", "", "")
    row: Row = {
        "country_name": None, "country_iso_code": None, "region": None,
        "cloud_provider": provider or None, "cloud_region": cloud_region or None,
        "on_cloud": "Y" if provider else "N",
    }
    entry = location_entry(key) if key else None
    if entry is None:
        return row
    country = location_entry(entry["country"])
    row["country_name"] = country["name"] if country is not None else None
    row["country_iso_code"] = entry["country_alpha3"]
    row["region"] = _codecarbon_region(key, entry)  # type: ignore[arg-type]
    return row


def _codecarbon_region(key: str, entry: dict[str, Any]) -> str | None:
    """The region as CodeCarbon's tracker takes and writes it (lowercase): the state or province of its
    USA, Canada and China tables (``US-CA`` -> ``california``, ``CN-NM`` -> ``inner mongolia``), the Nordic
    bidding zone (``SE3`` -> ``se3``); none for a country, nor for a cloud region (CodeCarbon writes none
    there either)."""
    if entry.get("kind") == "region":
        return entry["name"].rsplit(", ", 1)[0].lower()  # "California, USA"
    if entry.get("kind") == "zone":
        return key.lower()
    return None
