"""Aggregates over records, the same for every view: totals (g CO2e, kWh), the hardware (device counts)
and the grid locations of a set of records, one line per try, and the flat per-task-instance summary.
Pure: no Airflow. Each is one :class:`Aggregate`, which takes records one at a time, so a stream of any
length is aggregated in constant memory.

The UI sums :func:`task_summary` objects over thousands of task instances inside the database (one JSON
object per task instance, flat keys), instead of decoding every try's full record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import getitem
from typing import Any

from airflow_carbon.core.record import COMPONENTS, Record, device_counts, format_hardware, sort_key
from airflow_carbon.core.units import J_PER_KWH

SUMMARY_VERSION = 1


class Aggregate:
    """Running aggregates over records added one at a time (:meth:`add`), in constant memory: sums, counts
    and the distinct hardware, locations and methods, never the records themselves. Every aggregate of a
    set of records here (:func:`totals`, :func:`hardware_counts`, :func:`geographical_location`,
    :func:`task_summary`, the card's ``co2_eq_emissions``) is one of these, so a stream of records (files,
    XCom values) and a list give the same figures. Sums run in the records' order, as ``sum()`` does.

    ``add`` takes a validated record in the newest shape: a dict (:func:`~airflow_carbon.core.record.validate_record`
    and :func:`~airflow_carbon.core.record.upgrade`) or :func:`~airflow_carbon.core.record.decode_record`'s view."""

    def __init__(self) -> None:
        self.emissions_g: float = 0  # g CO2e (an int 0 before the first record, as sum() starts)
        self.energy_kwh: float = 0  # kWh, before PUE
        self.energy_kwh_by_component: dict[str, float] = dict.fromkeys(COMPONENTS, 0)  # kWh; missing counts 0
        self.duration_s: float = 0  # s, all tries
        self.tries = 0
        self.failed_tries = 0  # status other than success (an Airflow record's)
        self.locations: set[str] = set()  # intensity.name
        self.gpu_methods: set[str] = set()  # gpus[].method
        self.gpu_missing = False  # some try's components.gpu.method is "missing"
        self.cpu_methods: set[str] = set()
        self.ram_methods: set[str] = set()
        self.live: dict[tuple[Any, Any], int] = {}  # (live_source, zone) -> tries with a live intensity, first seen first
        self.live_fell_back = False  # a live try used the bundled figure for some hours
        self.fell_back = 0  # tries whose intensity has a fallback
        self._gpus: dict[tuple[str, str], str] = {}  # (host, uuid) -> name, first seen first
        self._cpus: dict[str, tuple[str, int]] = {}  # host -> (model, sockets)

    @classmethod
    def of(cls, records: Iterable[Record]) -> Aggregate:
        """The aggregates of ``records``, consumed once."""
        aggregate = cls()
        for record in records:
            aggregate.add(record)
        return aggregate

    def add(self, record: Record) -> None:
        """Count one record (one task try)."""
        # A field every record has is read with `field`: record[key] for a dict, the attribute for a view (a
        # view's attribute is read in C, its record["key"] in Python: a tenth of the cost of a view's record).
        # An optional field is read with .get / `in`, which both have.
        field = getitem if isinstance(record, Mapping) else getattr
        c = field(record, "components")
        gpu, cpu, ram = field(c, "gpu"), field(c, "cpu"), field(c, "ram")
        self.emissions_g += field(record, "emissions_g")
        self.energy_kwh += field(record, "energy_kwh")
        by_component = self.energy_kwh_by_component
        by_component["gpu"] += field(gpu, "energy_kwh") or 0.0
        by_component["cpu"] += field(cpu, "energy_kwh") or 0.0
        by_component["ram"] += field(ram, "energy_kwh") or 0.0
        self.duration_s += field(record, "duration_s")
        self.tries += 1
        if record.get("status") not in (None, "success"):
            self.failed_tries += 1
        host, known, methods = field(record, "host"), self._gpus, self.gpu_methods
        for g in field(record, "gpus"):
            known[(host, field(g, "uuid"))] = field(g, "name")
            methods.add(field(g, "method"))
        if "model" in cpu:
            self._cpus[host] = (cpu["model"], cpu.get("sockets", 1))
        if field(gpu, "method") == "missing":
            self.gpu_missing = True
        self.cpu_methods.add(field(cpu, "method"))
        self.ram_methods.add(field(ram, "method"))
        intensity = field(record, "intensity")
        self.locations.add(field(intensity, "name"))
        fell_back = "fallback" in intensity
        self.fell_back += fell_back
        if intensity.get("method") == "live":
            key = (intensity.get("live_source"), intensity.get("zone"))
            self.live[key] = self.live.get(key, 0) + 1
            self.live_fell_back = self.live_fell_back or fell_back

    def totals(self) -> dict[str, Any]:
        """Emissions (g CO2e) and energy (kWh, total and by component) over every record: :func:`totals`."""
        return {
            "emissions_g": self.emissions_g,
            "energy_kwh": self.energy_kwh,
            "energy_kwh_by_component": dict(self.energy_kwh_by_component),
            "tries": self.tries,
            "failed_tries": self.failed_tries,
        }

    def hardware_counts(self) -> dict[str, int]:
        """Distinct hardware, device name -> count: :func:`hardware_counts`."""
        return device_counts(self._gpus.values(), self._cpus.values())

    def hardware_used(self) -> str:
        """:meth:`hardware_counts` as the card writes it."""
        return format_hardware(self.hardware_counts())

    def geographical_location(self) -> str:
        """The grid locations, as :func:`geographical_location` writes them."""
        return "; ".join(sorted(self.locations))


def hardware_counts(records: Iterable[Record]) -> dict[str, int]:
    """Distinct hardware across the records, device name -> count: GPUs by UUID per host, then CPU
    sockets by host, each most used first (e.g. {'NVIDIA A100-SXM4-80GB': 8, 'AMD EPYC 7763': 2}), by the
    records' hardware rule (:func:`~airflow_carbon.core.record.device_counts`)."""
    return Aggregate.of(records).hardware_counts()


def hardware_used(records: Iterable[Record]) -> str:
    """Distinct hardware across the records (:func:`hardware_counts`), as the card writes it."""
    return Aggregate.of(records).hardware_used()


def geographical_location(records: Iterable[Record]) -> str:
    """The grid locations the energy was drawn in, as granular as known (e.g. 'Quebec, Canada')."""
    return Aggregate.of(records).geographical_location()


def totals(records: Iterable[Record]) -> dict[str, Any]:
    """Emissions (g CO2e) and energy (kWh, total and by component) over every record."""
    return Aggregate.of(records).totals()


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
    aggregate = Aggregate.of(records)
    total = aggregate.totals()
    by_component = total.pop("energy_kwh_by_component")
    last = max(records, key=lambda r: r.get("task", {}).get("try_number", 0))
    return {
        "summary_version": SUMMARY_VERSION,
        **total,
        **{f"{name}_kwh": kwh for name, kwh in by_component.items()},
        "duration_s": aggregate.duration_s,
        "status": last.get("status"),
        "hostname": last.get("task", {}).get("hostname") or last["host"],
        "hardware": aggregate.hardware_counts(),
        "location": aggregate.geographical_location(),
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
