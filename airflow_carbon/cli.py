"""Command line (also ``python -m airflow_carbon``); needs no Airflow configuration.

- ``airflow-carbon measure [options] -- CMD ARGS...`` runs the command, measures its energy and
  emissions, prints the record, and exits with the command's status.
- ``airflow-carbon export --format codecarbon RECORDS... [-o emissions.csv]`` writes records (JSON or
  JSONL files) as CodeCarbon's ``emissions.csv``; a bad record exits 2 naming its file, line and field.
- ``airflow-carbon records DAG_ID [RUN_ID] [--format table|json|csv]`` reads a DAG run's records from
  Airflow's metadata database (the only command that needs Airflow; imported only then).
- ``airflow-carbon card RECORDS... --training-type fine-tuning [--apply README.md]`` prints the
  records' ``co2_eq_emissions`` as YAML, or writes it into a local model card
  (:func:`airflow_carbon.edit_card_metadata`).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_carbon.core.meter import EnergyMeter
from airflow_carbon.core.options import Option, default_doc, expected, options_in, parse_text
from airflow_carbon.core.record import COMPONENTS, Component, Record
from airflow_carbon.core.record_files import RecordFileError, read_record_files
from airflow_carbon.core.units import J_PER_KWH


def _option_type(option: Option) -> object:
    """argparse's ``type`` for a table option: its text parsed and validated as everywhere else (the same
    bounds); a bad value exits 2 naming it (``argument --pue: pue=-1.0 is invalid; expected ...``)."""

    def parse(text: str) -> object:
        try:
            return parse_text(option, text, empty_is_default=False)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.name
    return parse


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
    for option in options_in("cli"):  # the option table's: flags, doc with units, defaults, bounds
        m.add_argument(*option.cli, dest=option.name, type=_option_type(option), default=option.default,
                       metavar=option.metavar or "{" + ",".join(option.choices) + "}",
                       help=f"{option.doc}. Accepted: {expected(option, example=False)}; default: {default_doc(option)}")
    m.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    e = sub.add_parser(
        "export",
        help="write records as another tool's file (CodeCarbon's emissions.csv)",
        description="Validate every record, then write them all, one row each, as CodeCarbon 3.3.2's "
        "emissions.csv (its columns, units and conventions; energies include PUE). A bad record exits 2 "
        "naming its file, line and field, and nothing is written.",
    )
    e.add_argument("--format", "-f", choices=("codecarbon",), default="codecarbon", help="the file format (default codecarbon)")
    e.add_argument("--output", "-o", metavar="PATH", help="where to write the file (default, or '-': stdout)")
    e.add_argument("records", nargs="+", metavar="RECORDS",
                   help="record files: .json (one record or a list of them) or .jsonl (one record a line)")
    r = sub.add_parser(
        "records",
        help="a DAG run's records from Airflow's metadata database (needs the Airflow environment)",
        description="Every record of a DAG run (every tracked task, mapped instance and try), read from the "
        "metadata database of the Airflow configured here (AIRFLOW_HOME / AIRFLOW__DATABASE__SQL_ALCHEMY_CONN): "
        "a table, JSON (a list of records, as export and card read them) or CodeCarbon's emissions.csv.",
    )
    r.add_argument("dag_id", metavar="DAG_ID")
    r.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the DAG's latest run")
    r.add_argument("--format", "-f", choices=("table", "json", "csv"), default="table", help="default: table")
    c = sub.add_parser(
        "card",
        help="the records' co2_eq_emissions: print it as YAML, or write it into a model card (--apply)",
        description="Sum the records (every try counts) into the Hub's co2_eq_emissions metadata and print it "
        "as the YAML of a card's front matter; with --apply CARD, write it into that model card (a README.md, "
        "created if missing) instead, every other byte of the card kept. Running it again with the same "
        "--origin recomputes the value instead of adding to it.",
    )
    c.add_argument("records", nargs="+", metavar="RECORDS", help="record files (.json or .jsonl), as for export")
    c.add_argument("--training-type", required=True, help="'fine-tuning' or 'pre-training' (other text: a warning)")
    c.add_argument("--apply", metavar="CARD", help="the model card file to edit in place, e.g. my-model/README.md")
    c.add_argument("--origin", default="command line", help="where the figures come from, kept in source (default 'command line')")
    c.add_argument("--on-existing", choices=("fail", "replace", "add"), default="fail",
                   help="with --apply: when the card has co2_eq_emissions from elsewhere (default fail)")
    c.add_argument("--dry-run", action="store_true", help="with --apply: print the new card instead of writing it")
    return parser


def _fmt_kwh(kwh: float | None) -> str:
    """Energy for people: J below 1 Wh, Wh below 1 kWh, kWh above."""
    if kwh is None:
        return "missing"
    if kwh < 1e-3:
        return f"{kwh * J_PER_KWH:.2f} J"
    return f"{kwh * 1000:.3f} Wh" if kwh < 1 else f"{kwh:.3f} kWh"


def _basis(component: Component) -> str:
    if "w_per_core" in component:
        return f": {component['cpu_time_s']:.2f} CPU-s x {component['w_per_core']:g} W/core"
    if "w_per_gb" in component:
        return f": {component['mean_rss_gb']:.3f} GB resident x {component['w_per_gb']:g} W/GB"
    if "packages" in component:
        return f": {component['packages']} CPU package(s)"
    return ""


def summary(record: Record) -> str:
    """A human-readable report of a record; every figure says how it was obtained."""
    i = record["intensity"]
    lines = [
        f"airflow-carbon: {record['duration_s']:.2f} s on {record['host']} ({record['hardware_used']})",
        f"  energy     {_fmt_kwh(record['energy_kwh'])} (IT energy, before PUE)",
    ]
    for name in COMPONENTS:
        c = record["components"][name]
        lines.append(f"    {name:<4}     {_fmt_kwh(c['energy_kwh']):<12} [{c['method']}{_basis(c)}]")
    for g in record["gpus"]:
        energy = "missing" if g["energy_j"] is None else f"{g['energy_j']:.1f} J"
        mean = "-" if g["mean_power_w"] is None else f"{g['mean_power_w']:.1f} W"
        peak = "-" if g["peak_power_w"] is None else f"{g['peak_power_w']:.1f} W"
        lines.append(f"    GPU {g['index']} {g['name']}: {energy} [{g['method']}], mean {mean}, peak {peak} [sampled]")
    year = f", {i['year']}" if i.get("year") else ""
    lines += [
        f"  intensity  {i['g_per_kwh']:.1f} gCO2e/kWh ({i.get('emission_factor') or 'basis not stated'}), "
        f"{i['name']} [{i['method']}: {i['source']}{year}]",
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
        meter = EnergyMeter(**{option.name: getattr(args, option.name) for option in options_in("cli")})
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


def export_command(args: argparse.Namespace) -> int:
    from airflow_carbon.core.export import records_csv

    try:
        data = records_csv(read_record_files(args.records))
    except RecordFileError as exc:
        print(f"airflow-carbon export: {exc}; nothing was written", file=sys.stderr)
        return 2
    if args.output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            Path(args.output).write_bytes(data)
        except OSError as exc:
            print(f"airflow-carbon export: cannot write {args.output} ({exc.strerror or exc})", file=sys.stderr)
            return 2
    return 0


def records_command(args: argparse.Namespace) -> int:
    """``airflow-carbon records``: a DAG run's records from the metadata database."""
    from airflow.utils.session import create_session

    from airflow_carbon.xcom import latest_run_id, run_records

    with create_session() as session:
        run_id = args.run_id or latest_run_id(args.dag_id, session)
        if run_id is None:
            print(f"airflow-carbon records: no run of DAG {args.dag_id!r} in the metadata database", file=sys.stderr)
            return 1
        records = run_records(args.dag_id, run_id, session)
    if not records:
        print(f"airflow-carbon records: DAG {args.dag_id!r} run {run_id!r} has no airflow-carbon records: "
              "decorate a task with @task.carbon", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(records, indent=1))
    elif args.format == "csv":
        from airflow_carbon.core.export import records_csv

        sys.stdout.buffer.write(records_csv(records))
        sys.stdout.flush()
    else:
        from airflow_carbon.core.report import records_table

        print(f"DAG {args.dag_id}, run {run_id}")
        print(records_table(records))
    return 0


def card_command(args: argparse.Namespace) -> int:
    """``airflow-carbon card``: the records' co2_eq_emissions, as YAML or into a local model card."""
    from airflow_carbon.card.metadata import co2_eq_emissions, combine, validate_training_type
    from airflow_carbon.card.publish import preview_file, publish_file
    from airflow_carbon.card.text import CardError, co2_yaml

    if args.dry_run and not args.apply:
        print("airflow-carbon card: --dry-run previews an --apply; without --apply nothing is written anyway", file=sys.stderr)
        return 2
    try:
        records = read_record_files(args.records)
        training_type = validate_training_type(args.training_type)
        ours = co2_eq_emissions(records, training_type, origin=args.origin)
        if not args.apply:
            sys.stdout.write(co2_yaml(ours))
            return 0
        make = lambda old: ours if old is None else combine(old, ours, args.on_existing, args.origin)  # noqa: E731
        if args.dry_run:
            sys.stdout.write(preview_file(args.apply, make))
            return 0
        published = publish_file(args.apply, make)
    except (RecordFileError, CardError, ValueError, OSError) as exc:  # ValueError: on_existing=fail, no records
        print(f"airflow-carbon card: {exc}; the card was not changed", file=sys.stderr)
        return 2
    state = "written to" if published.changed else "unchanged in"
    print(f"co2_eq_emissions {state} {published.location}: {published.co2_eq_emissions['emissions']:g} g CO2e "
          f"from {len(records)} record(s)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "measure":
        return measure_command(args)
    if args.command == "export":
        return export_command(args)
    if args.command == "card":
        return card_command(args)
    if args.command == "records":
        return records_command(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
