"""Command line: ``airflow-carbon measure [options] -- CMD ARGS...`` (also ``python -m airflow_carbon``).

Runs the command, measures its energy and emissions, prints the record, and exits with the command's
status. Needs no Airflow configuration.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from typing import Any, Sequence

from airflow_carbon.meter import EnergyMeter
from airflow_carbon.units import J_PER_KWH


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-carbon", description="Measure the energy and CO2e of ML work.")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser(
        "measure",
        help="run a command and report its energy and emissions",
        description="Run CMD, measure the GPU/CPU/RAM energy of its process tree, print the record and exit "
        "with CMD's status. The report goes to stderr (stdout stays CMD's) unless --output is given.",
    )
    m.add_argument("--json", action="store_true", help="print the record as JSON instead of a summary")
    m.add_argument("--output", "-o", metavar="PATH", help="also write the JSON record to PATH ('-' for stdout)")
    m.add_argument("--location", "-l", help="where it runs: ISO country (FR, FRA, France), region (US-CA, CA-QC) or cloud region (gcp:us-central1)")
    m.add_argument("--g-per-kwh", type=float, metavar="G", help="grid intensity in gCO2e/kWh (overrides --location's)")
    m.add_argument("--pue", type=float, default=1.0, help="data-centre power usage effectiveness, >= 1.0 (default 1.0)")
    m.add_argument("--sampling-interval", type=float, default=0.1, metavar="S", help="seconds between GPU power samples (default 0.1)")
    m.add_argument("--gpu-energy", choices=("auto", "sampled"), default="auto", help="'auto': energy counter where available (default); 'sampled': integrate sampled power")
    m.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    return parser


def _fmt_kwh(kwh: float | None) -> str:
    """Energy for people: J below 1 Wh, Wh below 1 kWh, kWh above."""
    if kwh is None:
        return "missing"
    if kwh < 1e-3:
        return f"{kwh * J_PER_KWH:.2f} J"
    return f"{kwh * 1000:.3f} Wh" if kwh < 1 else f"{kwh:.3f} kWh"


def _basis(component: dict[str, Any]) -> str:
    if "w_per_core" in component:
        return f": {component['cpu_time_s']:.2f} CPU-s x {component['w_per_core']:g} W/core"
    if "w_per_gb" in component:
        return f": {component['mean_rss_gb']:.3f} GB resident x {component['w_per_gb']:g} W/GB"
    if "packages" in component:
        return f": {component['packages']} CPU package(s)"
    return ""


def summary(record: dict[str, Any]) -> str:
    """A human-readable report of a record; every figure says how it was obtained."""
    i = record["intensity"]
    lines = [
        f"airflow-carbon: {record['duration_s']:.2f} s on {record['host']} ({record['hardware_used']})",
        f"  energy     {_fmt_kwh(record['energy_kwh'])} (IT energy, before PUE)",
    ]
    for name in ("gpu", "cpu", "ram"):
        c = record["components"][name]
        lines.append(f"    {name:<4}     {_fmt_kwh(c['energy_kwh']):<12} [{c['method']}{_basis(c)}]")
    for g in record["gpus"]:
        energy = "missing" if g["energy_j"] is None else f"{g['energy_j']:.1f} J"
        mean = "-" if g["mean_power_w"] is None else f"{g['mean_power_w']:.1f} W"
        peak = "-" if g["peak_power_w"] is None else f"{g['peak_power_w']:.1f} W"
        lines.append(f"    GPU {g['index']} {g['name']}: {energy} [{g['method']}], mean {mean}, peak {peak} [sampled]")
    year = f", {i['year']}" if i.get("year") else ""
    lines += [
        f"  intensity  {i['g_per_kwh']:.1f} gCO2e/kWh, {i['name']} [{i['method']}: {i['source']}{year}]",
        f"  PUE        {record['pue']:g}",
        f"  emissions  {record['emissions_g']:.3g} gCO2e [energy x PUE x intensity]",
    ]
    lines += [f"  warning: {w}" for w in record["warnings"]]
    return "\n".join(lines)


def _run(cmd: list[str]) -> int:
    try:
        child = subprocess.Popen(cmd)
    except FileNotFoundError:
        print(f"airflow-carbon: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"airflow-carbon: permission denied: {cmd[0]}", file=sys.stderr)
        return 126
    previous = {s: signal.signal(s, lambda signum, _f: child.send_signal(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as shells do


def measure_command(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("airflow-carbon measure: no command given; usage: airflow-carbon measure [options] -- CMD ARGS...", file=sys.stderr)
        return 2
    try:
        meter = EnergyMeter(
            location=args.location,
            g_per_kwh=args.g_per_kwh,
            pue=args.pue,
            sampling_interval_s=args.sampling_interval,
            gpu_energy=args.gpu_energy,
        )
    except ValueError as exc:  # bad configuration: refuse before running anything
        print(f"airflow-carbon measure: {exc}", file=sys.stderr)
        return 2
    meter.start()
    try:
        status = _run(cmd)
    finally:
        record = meter.stop()
    print(json.dumps(record, indent=2) if args.json else summary(record), file=sys.stderr)
    if args.output == "-":
        print(json.dumps(record, indent=2))
    elif args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "measure":
        return measure_command(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
