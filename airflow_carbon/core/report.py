"""A per-task table of records (text), for terminals and logs. Pure: no Airflow."""

from __future__ import annotations

from typing import Any, Iterable

from airflow_carbon.core.units import J_PER_KWH


def component_energy(component: dict[str, Any]) -> str:
    """A record component's energy for people, with its method: '12.3 J [counter]'."""
    kwh = component["energy_kwh"]
    value = "missing" if kwh is None else f"{kwh * J_PER_KWH:.1f} J"
    return f"{value} [{component['method']}]"


def records_table(records: Iterable[dict[str, Any]]) -> str:
    """One row per task try (task, map index, try, status, GPU/CPU/RAM energy with method, gCO2e), and the total."""
    rows = [("task", "try", "status", "GPU", "CPU", "RAM", "gCO2e")]
    total_kwh = total_g = 0.0
    records = sorted(records, key=lambda r: (r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"]))
    for r in records:
        t, c = r["task"], r["components"]
        name = t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else "")
        rows.append((name, str(t["try_number"]), r.get("status", "?"), component_energy(c["gpu"]), component_energy(c["cpu"]), component_energy(c["ram"]), f"{r['emissions_g']:.6g}"))
        total_kwh += r["energy_kwh"]
        total_g += r["emissions_g"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    line = lambda row: "  ".join(cell.ljust(w) if i < 6 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))  # noqa: E731
    out = [line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])]
    out.append(f"total: {len(records)} task tr{'y' if len(records) == 1 else 'ies'}, {total_kwh * J_PER_KWH:.1f} J ({total_kwh * 1000:.4f} Wh), {total_g:.6g} gCO2e")
    for name, g, basis, source, method, pue in sorted({_intensity(r) for r in records}):
        out.append(f"intensity: {name}, {g:g} gCO2e/kWh ({basis}) [{method}: {source}], PUE {pue:g}")
    return "\n".join(out)


def _intensity(record: dict[str, Any]) -> tuple[str, float, str, str, str, float]:
    i = record["intensity"]
    source = i["source"] + (f", {i['year']}" if i.get("year") else "")
    basis = i.get("emission_factor") or "basis not stated"  # lifecycle / direct; absent in older records
    return i["name"], i["g_per_kwh"], basis, source, i["method"], record["pue"]
