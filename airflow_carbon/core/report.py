"""A per-task table of records (text), for terminals and logs. Pure: no Airflow."""

from __future__ import annotations

from collections.abc import Iterable

from airflow_carbon.core.record import COMPONENTS, Component, Record, sort_key, task_label
from airflow_carbon.core.units import J_PER_KWH


def component_energy(component: Component) -> str:
    """A record component's energy for people, with its method: '12.3 J [counter]'."""
    kwh = component["energy_kwh"]
    value = "missing" if kwh is None else f"{kwh * J_PER_KWH:.1f} J"
    return f"{value} [{component['method']}]"


def records_table(records: Iterable[Record]) -> str:
    """One row per task try (task, map index, try, status, GPU/CPU/RAM energy with method, gCO2e), and the total."""
    rows = [("task", "try", "status", *(k.upper() for k in COMPONENTS), "gCO2e")]
    total_kwh = total_g = 0.0
    records = sorted(records, key=sort_key)
    for r in records:
        t, c = r["task"], r["components"]
        energies = (component_energy(c[k]) for k in COMPONENTS)
        rows.append((task_label(t), str(t["try_number"]), r.get("status", "?"), *energies, f"{r['emissions_g']:.6g}"))
        total_kwh += r["energy_kwh"]
        total_g += r["emissions_g"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    line = lambda row: "  ".join(cell.ljust(w) if i < 6 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))  # noqa: E731
    out = [line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])]
    out.append(f"total: {len(records)} task tr{'y' if len(records) == 1 else 'ies'}, "
               f"{total_kwh * J_PER_KWH:.1f} J ({total_kwh * 1000:.4f} Wh), {total_g:.6g} gCO2e")
    for name, g, basis, source, method, pue in sorted({_intensity(r) for r in records}):
        out.append(f"intensity: {name}, {g:g} gCO2e/kWh ({basis}) [{method}: {source}], PUE {pue:g}")
    return "\n".join(out)


def _intensity(record: Record) -> tuple[str, float, str, str, str, float]:
    i = record["intensity"]
    source = i["source"] + (f", {i['year']}" if i.get("year") else "")
    basis = i.get("emission_factor") or "basis not stated"  # lifecycle / direct; absent in older records
    return i["name"], i["g_per_kwh"], basis, source, i["method"], record["pue"]
