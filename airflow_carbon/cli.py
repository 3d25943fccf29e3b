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
- ``airflow-carbon intensity LOCATION [--source SOURCE | --conn-uri URI] [--forecast] [--json]`` prints the
  grid intensity a task at LOCATION would use: the bundled table's figure, or a live source's current
  figure (and forecast), with the bundled figure it falls back to. Exits 1 where the source gives no figure.
- ``airflow-carbon gpu-check [--out build/gpu-check.json] [--seconds 20]`` checks this machine's GPUs for
  airflow-carbon (NVML support, counter vs sampled power vs nvidia-smi under a load, CUDA_VISIBLE_DEVICES and
  MIG UUIDs, the shared-GPU split) and writes one JSON report (:mod:`airflow_carbon.gpu_check`). Exits 1
  where a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from airflow_carbon.core.intensity import GridIntensity, resolve_intensity
from airflow_carbon.core.live import SOURCES, LiveSpec
from airflow_carbon.core.meter import EnergyMeter
from airflow_carbon.core.options import OPTION, Option, default_doc, expected, options_in, parse_text
from airflow_carbon.core.record import COMPONENTS, Component, Record
from airflow_carbon.core.record_files import RecordFileError, iter_record_files, read_record_files
from airflow_carbon.core.segments import IntensityInterval
from airflow_carbon.core.units import J_PER_KWH, utc_iso


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
    sm = sub.add_parser(
        "summaries",
        help="rebuild the UI's table of task-instance summaries from XCom (needs the Airflow environment)",
        description="Refill carbon_run_summary, the table of finished DAG runs' totals that the UI sums, from the "
        "records' XComs in the metadata database of the Airflow configured here (every DAG, or those named). "
        "`airflow db migrate` creates and fills it, and the scheduler adds each run as it ends; rebuild after "
        "`airflow db clean` removed XComs, or where the scheduler ran without airflow-carbon installed.",
    )
    sm.add_argument("action", choices=("rebuild",), help="rebuild: refill the table from XCom")
    sm.add_argument("--dag-id", action="append", dest="dag_ids", metavar="DAG_ID", help="only this DAG (repeatable)")
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
    _add_intensity_parser(sub)
    from airflow_carbon.gpu_check import add_arguments as _gpu_check_arguments

    _gpu_check_arguments(sub.add_parser(
        "gpu-check",
        help="check this machine's NVIDIA GPUs for airflow-carbon and write one JSON report",
        description="List the GPUs and what NVML supports on each, run a load (torch matmuls where torch is "
        "importable, else idle), compare the energy counter, sampled power and nvidia-smi's power.draw, check a "
        "CUDA_VISIBLE_DEVICES GPU UUID and MIG UUID and the split of a GPU shared by two windows, and write one "
        "JSON report (bench/README.md: 'make gpu-check: reading the report'). Exits 1 where a check failed.",
    ))
    return parser


_CONN_URI_HELP = """\
an Airflow Connection URI of a live source, read with Airflow's own parser (this needs Airflow installed,
not configured): TYPE://LOGIN:PASSWORD@HOST:PORT/SCHEME?EXTRA. TYPE is electricitymaps, watttime or
uk-carbon-intensity (a URI writes '_' as '-'); the password is the Electricity Maps token or the WattTime
password, the login WattTime's; the host is the API (the public one when empty) and the path its URL scheme
(https when empty): uk-carbon-intensity://127.0.0.1:8080/http is http://127.0.0.1:8080. A host with a path
is written percent-encoded (electricitymaps://:TOKEN@https%%3A%%2F%%2Fproxy%%2Fem). Query parameters are
the extra (electricitymaps://:TOKEN@?emission_factor=direct). A URI with a secret is visible in ps and the
shell history: prefer --source with --token-env, or pass the URI from a variable ("$AIRFLOW_CONN_EM")."""


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
        if component.get("memory") == "pss":
            return f": {component['mean_pss_gb']:.3f} GB proportional set size x {component['w_per_gb']:g} W/GB"
        return f": {component['mean_rss_gb']:.3f} GB resident x {component['w_per_gb']:g} W/GB"
    if "packages" in component:
        share = component.get("share")
        split = f", {100 * share:.0f} % of it this tree's (its share of the host's busy CPU time)" if share is not None else ""
        return f": {component['packages']} CPU package(s){split}"
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


def summaries_command(args: argparse.Namespace) -> int:
    """``airflow-carbon summaries rebuild``: refill carbon_run_summary from the records' XComs."""
    import time

    from airflow.utils.session import create_session

    from airflow_carbon.models.summary import rebuild

    start = time.perf_counter()
    with create_session() as session:
        rows = rebuild(session, args.dag_ids)
    where = "every DAG" if not args.dag_ids else "DAG " + ", ".join(args.dag_ids)
    print(f"airflow-carbon summaries: {rows} finished runs of {where} summed from XCom into carbon_run_summary "
          f"in {time.perf_counter() - start:.1f} s")
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
    from airflow_carbon.core.aggregate import Aggregate

    if args.dry_run and not args.apply:
        print("airflow-carbon card: --dry-run previews an --apply; without --apply nothing is written anyway", file=sys.stderr)
        return 2
    try:
        training_type = validate_training_type(args.training_type)
        aggregate = Aggregate.of(iter_record_files(args.records, views=True))  # one record at a time: flat memory
        ours = co2_eq_emissions(aggregate, training_type, origin=args.origin)
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
          f"from {aggregate.tries} record(s)", file=sys.stderr)
    return 0


# -- airflow-carbon intensity ------------------------------------------------------------------------


def _add_intensity_parser(sub: Any) -> None:
    """The ``intensity`` subcommand's arguments."""
    i = sub.add_parser(
        "intensity",
        allow_abbrev=False,  # "--token SECRET" must not pass as --token-env (and be echoed as a variable's name)
        help="the grid intensity a task at LOCATION would use: bundled, or a live source's current figure",
        description="Print the grid intensity (gCO2e/kWh) for LOCATION: the bundled table's yearly figure, or with "
        "--source or --conn-uri a live source's current figure (its interval in UTC, zone, signal and emission "
        "factor) and, with --forecast, the coming intervals. Where the source gives no figure, the reason and the "
        "bundled figure a task would fall back to are printed and the status is 1. Secrets are never printed; "
        "nothing is cached (every call asks the source).",
        epilog="sources: electricitymaps (Electricity Maps v3, hourly average, --token-env), watttime (WattTime v3, "
        "5-minute marginal MOER, --login-env and --password-env), uk_carbon_intensity (GB Carbon Intensity API, "
        "half-hourly average, no key).",
    )
    i.add_argument("location", metavar="LOCATION", help="a location the bundled table knows ('FR', 'US-CA', 'gcp:europe-west2')")
    how = i.add_mutually_exclusive_group()
    how.add_argument("--conn-uri", metavar="URI", help=_CONN_URI_HELP)
    how.add_argument("--source", choices=tuple(SOURCES), help="a live source, without Airflow")
    i.add_argument("--url", metavar="BASE_URL", help="with --source: the API's base URL (default: the public API)")
    i.add_argument("--token-env", metavar="VAR", help="with --source electricitymaps: the environment variable holding the token")
    i.add_argument("--login-env", metavar="VAR", help="with --source watttime: the environment variable holding the login")
    i.add_argument("--password-env", metavar="VAR", help="with --source watttime: the environment variable holding the password")
    i.add_argument("--emission-factor", choices=("lifecycle", "direct"),
                   help="with --source electricitymaps: the basis of its figures (default lifecycle)")
    i.add_argument("--zone", type=_option_type(OPTION["intensity_zone"]), metavar="ZONE",
                   help="the source's zone or region (default: the one mapped from LOCATION): an Electricity Maps zone "
                   "('DE'), a WattTime region ('CAISO_NORTH'), a GB region id 1-17 or outward postcode ('13', 'RG10')")
    i.add_argument("--forecast", action="store_true", help="also print the coming intervals (GB: 24 h; the others: their forecast)")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    i.set_defaults(usage_error=i.error)


class _UsageError(Exception):
    """A bad argument of ``intensity``: reported as argparse does (usage, the message, status 2)."""


def _bundled(location: str) -> GridIntensity:
    """The bundled table's figure (gCO2e/kWh) for ``location``; an unknown one is a usage error."""
    try:
        return resolve_intensity(location)
    except ValueError as exc:  # UnknownLocationError names close matches
        raise _UsageError(str(exc)) from None


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
"""What the error message of an unset variable names: a conventional variable name (anything else may be
the secret itself, passed by mistake)."""


def _env(var: str, flag: str) -> str:
    """The value of the environment variable ``var`` (named by ``flag``); unset or empty is a usage error,
    which names the variable only where ``var`` looks like a variable's name."""
    value = os.environ.get(var, "")
    if not value:
        if not _ENV_NAME.fullmatch(var):
            raise _UsageError(f"{flag} takes the name of an environment variable (A-Z, 0-9, '_'), not its value; the "
                              "variable it names is not set (the name is not printed: it may be the secret itself)")
        raise _UsageError(f"environment variable {var} (named by {flag}) is not set or is empty")
    return value


def _check_source_flags(args: argparse.Namespace) -> None:
    """Refuse the flags that do not go with the chosen source (or with no --source)."""
    given = {f: getattr(args, f.lstrip("-").replace("-", "_")) is not None
             for f in ("--url", "--token-env", "--login-env", "--password-env", "--emission-factor")}
    wanted = {"electricitymaps": {"--url", "--token-env", "--emission-factor"}, "watttime": {"--url", "--login-env", "--password-env"},
              "uk_carbon_intensity": {"--url"}}.get(args.source, set())
    misplaced = [f for f, on in given.items() if on and f not in wanted]
    if misplaced:
        flag = misplaced[0]
        raise _UsageError(f"{flag} does not go with --source {args.source}" if args.source else f"{flag} needs --source")
    if args.source is None and not args.conn_uri and (args.zone or args.forecast):
        raise _UsageError("--zone and --forecast need a live source (--source or --conn-uri)")


def _spec_from_args(args: argparse.Namespace) -> LiveSpec:
    """A LiveSpec from --source and the environment variables it names (never a secret on the command line)."""
    if args.source == "electricitymaps":
        if not args.token_env:
            raise _UsageError("--source electricitymaps needs --token-env VAR (the variable holding the token)")
        return LiveSpec("electricitymaps", args.url, token=_env(args.token_env, "--token-env"), emission_factor=args.emission_factor,
                        credentials=f"environment variable {args.token_env}")
    if args.source == "watttime":
        if not (args.login_env and args.password_env):
            raise _UsageError("--source watttime needs --login-env VAR and --password-env VAR")
        return LiveSpec("watttime", args.url, username=_env(args.login_env, "--login-env"),
                        password=_env(args.password_env, "--password-env"),
                        credentials=f"environment variables {args.login_env} and {args.password_env}")
    return LiveSpec("uk_carbon_intensity", args.url)


def _redact(text: str, uri: str) -> str:
    """``text`` without ``uri`` and without its user part (login, password), for a message about a URI that
    did not parse."""
    text = text.replace(uri, "the URI")
    rest = uri.split("://", 1)[-1]
    userinfo = rest.split("/", 1)[0].rsplit("@", 1)[0] if "@" in rest else ""
    for secret in sorted({userinfo, *userinfo.split(":")}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _spec_from_uri(uri: str) -> LiveSpec:
    """A LiveSpec from an Airflow Connection URI, parsed by Airflow (imported only here); conn id ``cli``."""
    scheme = uri.split("://", 1)[0]
    if "_" in scheme:
        raise _UsageError(f"--conn-uri: a URI writes the type {scheme!r} with '-' instead of '_' ({scheme.replace('_', '-')}://...)")
    # The Task SDK's Connection (what a task's BaseHook.get_connection returns), not the metadata database's
    # model: no ORM, and no Fernet warning on stdout (which would break --json).
    try:
        from airflow.sdk import Connection

        from airflow_carbon.hooks.grid_intensity import spec_from_connection
    except ImportError as exc:
        raise _UsageError(f"--conn-uri needs Airflow installed ({exc}); --source works without it") from None

    try:
        conn = Connection.from_uri(uri, conn_id="cli")
    except Exception as exc:  # AirflowException (it quotes the URI), ValueError (a bad port): never echo a secret
        raise _UsageError(f"--conn-uri is not a Connection URI: {_redact(str(exc), uri)}") from None
    try:
        return spec_from_connection(conn, "cli")
    except ValueError as exc:
        raise _UsageError(f"--conn-uri: {exc}") from None


def _zone(spec: LiveSpec, location: str, zone: str | None) -> str | None:
    """``zone`` or the source's zone for ``location`` (None: GB national); a location without one is a usage error."""
    if zone is not None:
        return zone
    from airflow_carbon.core.zones import ZoneError, zone_for

    try:
        return zone_for(spec.source, location)
    except ZoneError as exc:
        raise _UsageError(f"{exc} Here: --zone ZONE.") from None


def _uk_region(zone: str | None) -> int | str | None:
    """The GB API's region: None (national), a region id (digits), or an outward postcode."""
    return int(zone) if zone is not None and zone.isdigit() else zone


def _current(client: Any, source: str, zone: str | None) -> tuple[IntensityInterval, str, list[IntensityInterval]]:
    """The source's current figure, what it is, and the intervals fetched with it (WattTime's forecast)."""
    if source == "uk_carbon_intensity":
        return client.current(_uk_region(zone))[0], "the current half hour", []
    if source == "electricitymaps":
        return client.latest(zone)[0], "the latest hour", []
    forecast = client.forecast(zone)
    return forecast[0], "the forecast's first point (WattTime serves no current figure)", forecast


def _forecast(client: Any, source: str, zone: str | None, now_s: float, fetched: list[IntensityInterval]) -> list[IntensityInterval]:
    """The coming intervals (those ending after ``now_s``, Unix s): GB's 24 h forward, the others' forecast."""
    if source == "uk_carbon_intensity":
        start = datetime.fromtimestamp(now_s - now_s % 1800, timezone.utc)
        intervals = client.forecast(start, _uk_region(zone))
    elif source == "electricitymaps":
        intervals = client.forecast(zone)
    else:
        intervals = fetched or client.forecast(zone)
    return [i for i in intervals if i.end_s > now_s]


def _is_plan_refusal(exc: Any) -> bool:
    """WattTime's 403 for a forecast the account's plan lacks (a free account outside CAISO_NORTH)."""
    return exc.source == "watttime" and exc.reason.startswith("HTTP 403") and "plan" in exc.reason


def _interval_json(interval: IntensityInterval) -> dict[str, Any]:
    return {"start": utc_iso(interval.start_s), "end": utc_iso(interval.end_s), "g_per_kwh": interval.g_per_kwh,
            "estimated": interval.estimated, "source": interval.source}


def _shown_url(url: str) -> str:
    """``url`` without any user part (``https://user:pw@host`` -> ``https://host``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def _live_report(spec: LiveSpec, zone: str | None, forecast: bool) -> dict[str, Any]:
    """Ask the source: the ``live`` part of the report (``error``: ``<source>: <reason>`` where it gave no figure)."""
    info = spec.info
    try:
        client = spec.client()
    except ValueError as exc:  # a credential the source needs is missing (a URI without its password)
        raise _UsageError(f"{spec.source}: {exc}") from None
    from airflow_carbon.core.sources.http import SourceError  # httpx: only for this command

    live: dict[str, Any] = {
        "source": spec.source, "label": info.label, "base_url": _shown_url(client.base_url), "conn_id": spec.conn_id,
        "zone": zone, "signal": info.signal, "emission_factor": spec.factor, "granularity_s": info.granularity_s,
        "license": info.license, "current": None, "error": None,
    }
    try:
        now_s = time.time()
        current, what, fetched = _current(client, spec.source, zone)
        live["current"] = {**_interval_json(current), "what": what}
        if forecast:
            live["forecast"] = [_interval_json(i) for i in _forecast(client, spec.source, zone, now_s, fetched)]
    except SourceError as exc:
        if live["current"] is not None:  # the current figure stands; only the forecast failed
            live["forecast_error"] = str(exc)
        else:
            live["error"] = str(exc)
            if _is_plan_refusal(exc):
                live["signal_index"] = _signal_index(client, zone)
    except ValueError as exc:  # a zone the client refuses (a GB region id out of range)
        raise _UsageError(f"--zone: {exc}") from None
    finally:
        client.close()
    return live


def _signal_index(client: Any, region: str) -> dict[str, Any] | None:
    """WattTime's percentile (0-100) of the region's current MOER, or None where that fails too."""
    from airflow_carbon.core.sources.http import SourceError

    try:
        index = client.signal_index(region)
    except SourceError:
        return None
    return {"region": index.region, "percentile": index.percentile, "point_time": utc_iso(index.point_time_s),
            "unit": "percentile (0-100) of the region's recent MOER, not gCO2e/kWh"}


def _report(args: argparse.Namespace) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What ``intensity`` prints: the figure a task would use now (gCO2e/kWh), how, and the bundled figure;
    and the secrets used (to scrub from the output, should a source ever echo one)."""
    _check_source_flags(args)
    bundled = _bundled(args.location)
    head: dict[str, Any] = {"location": bundled.location, "name": bundled.name}
    if args.source is None and not args.conn_uri:
        return {**head, "method": "bundled table", "g_per_kwh": bundled.g_per_kwh, "bundled": bundled.to_dict()}, ()
    spec = _spec_from_uri(args.conn_uri) if args.conn_uri else _spec_from_args(args)
    secrets = tuple(s for s in (spec.token, spec.password) if s)
    live = _live_report(spec, _zone(spec, args.location, args.zone), args.forecast)
    if live["error"] is None:
        report = {**head, "method": "live", "g_per_kwh": live["current"]["g_per_kwh"], "bundled": bundled.to_dict(), "live": live}
    else:
        report = {**head, "method": "fallback", "g_per_kwh": bundled.g_per_kwh, "fallback": live["error"],
                  "bundled": bundled.to_dict(), "live": live}
    return report, secrets


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (of 4 characters or more) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


_W = 18
"""The width of the text report's labels."""


def _when(iso: str) -> str:
    """A record time (``2026-12-03T10:00:00.000Z``) for people: ``2026-12-03 10:00`` (seconds where not 0)."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%d %H:%M" if when.second == 0 else "%Y-%m-%d %H:%M:%S")


def _bundled_lines(b: dict[str, Any], title: str) -> list[str]:
    year = f", {b['year']}" if b.get("year") else ""
    return [
        f"{title:<{_W}}{b['g_per_kwh']:.1f} gCO2e/kWh ({b.get('emission_factor') or 'basis not stated'}), {b['name']}",
        f"{'':<{_W}}[bundled table: {b['source']}{year}; licence {b.get('license') or 'not stated'}]",
    ]


def _live_lines(live: dict[str, Any]) -> list[str]:
    zone = live["zone"] if live["zone"] is not None else "national (Great Britain)"
    lines = [
        f"{'source':<{_W}}{live['label']} at {live['base_url']}" + (f" (Connection {live['conn_id']!r})" if live["conn_id"] else ""),
        f"{'zone':<{_W}}{zone}",
        f"{'signal':<{_W}}{live['signal']}" + (" (the generators that answer a change in load)" if live["signal"] == "marginal"
                                            else " (the grid mix)"),
        f"{'emission factor':<{_W}}{live['emission_factor']}",
    ]
    c = live["current"]
    if c is not None:
        state = "estimated or forecast" if c["estimated"] else "not estimated"
        lines.append(f"{'current':<{_W}}{c['g_per_kwh']:.1f} gCO2e/kWh, {_when(c['start'])} to {_when(c['end'])} UTC, "
                     f"{state} [{c['what']}]")
    return lines


def _forecast_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"forecast ({len(rows)} interval(s))", f"  {'start (UTC)':<20} {'end (UTC)':<20} {'gCO2e/kWh':>9}  estimated"]
    lines += [f"  {_when(r['start']):<20} {_when(r['end']):<20} {r['g_per_kwh']:>9.1f}  {'yes' if r['estimated'] else 'no'}" for r in rows]
    return lines


def intensity_text(report: dict[str, Any]) -> str:
    """The report of ``intensity`` for people; every figure says its unit, source and basis."""
    lines = [f"{'location':<{_W}}{report['name']} ({report['location']})", f"{'method':<{_W}}{report['method']}"]
    live = report.get("live")
    if live is None:
        return "\n".join(lines + _bundled_lines(report["bundled"], "intensity"))
    lines += _live_lines(live)
    if report["method"] == "fallback":
        lines.append(f"{'source failed':<{_W}}{report['fallback']}")
        index = live.get("signal_index")
        if index is not None:
            lines.append(f"{'signal index':<{_W}}{index['percentile']:g} at {_when(index['point_time'])} UTC: a percentile "
                         "(0-100) of the region's recent MOER, not gCO2e/kWh")
        lines += _bundled_lines(report["bundled"], "a task would use")
    else:
        lines += _bundled_lines(report["bundled"], "fallback")
    if "forecast" in live:
        lines += _forecast_lines(live["forecast"])
    if "forecast_error" in live:
        lines.append(f"{'forecast failed':<{_W}}{live['forecast_error']}")
    return "\n".join(lines)


def intensity_command(args: argparse.Namespace) -> int:
    """``airflow-carbon intensity``: 0 with a figure from the source (or the bundled table), 1 where the
    source gave none (the fallback is printed) or its forecast failed, 2 for a bad argument."""
    error: Callable[[str], NoReturn] = args.usage_error
    try:
        report, secrets = _report(args)
    except _UsageError as exc:
        error(str(exc))
    print(_scrub(json.dumps(report, indent=2) if args.json else intensity_text(report), secrets))
    return 1 if report["method"] == "fallback" or "forecast_error" in report.get("live", {}) else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse's ``parse_args``, except that ``intensity`` does not echo an unrecognised argument's value
    (``--token SECRET``): it names the unrecognised flags only."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "intensity":
        flags = " ".join(a.split("=", 1)[0] for a in extra if a.startswith("-")) or "positional"
        args.usage_error(f"unrecognized arguments: {flags} (values not printed); a secret is read from an environment "
                         "variable: --token-env VAR, --login-env VAR, --password-env VAR")
    if extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.command == "measure":
        return measure_command(args)
    if args.command == "export":
        return export_command(args)
    if args.command == "card":
        return card_command(args)
    if args.command == "records":
        return records_command(args)
    if args.command == "summaries":
        return summaries_command(args)
    if args.command == "intensity":
        return intensity_command(args)
    if args.command == "gpu-check":
        from airflow_carbon.gpu_check import command as gpu_check_command

        return gpu_check_command(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
