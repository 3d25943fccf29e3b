"""Our emissions.csv beside a real CodeCarbon one, made in the same run on the same simulated GPU.

CodeCarbon's OfflineEmissionsTracker (offline: no network) writes its own emissions.csv for four
places; ours comes from real records: one of ``airflow-carbon measure`` (a CLI record, no ``task``) and
Airflow-style ones (the meter's record with the task's identity). Both are read with pandas and must
have CodeCarbon's columns, units and conventions. Both run in the zone UTC+5:30, so local time shows.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import codecarbon
import pandas as pd
import pytest
from codecarbon.output_methods.emissions_data import EmissionsData
from codecarbon.output_methods.file import FileOutput

from airflow_carbon import EnergyMeter, load_record, validate_record
from airflow_carbon.core.export import CODECARBON_COLUMNS, CODECARBON_VERSION, codecarbon_location, codecarbon_rows, records_csv
from airflow_carbon.core.intensity import known_locations, lookup_location

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
TZ = "XST-5:30"  # a POSIX zone string (UTC+5:30), so no tzdata is needed
GPU = "count=1; power=const:200"  # the simulated GPU reports 29 % utilisation: 100 x 200 W / 700 W limit
PUE = 1.2
PLACES = {  # our location -> CodeCarbon's OfflineEmissionsTracker arguments for the same place
    "FR": {"country_iso_code": "FRA"},
    "US-CA": {"country_iso_code": "USA", "region": "california"},
    "SE3": {"country_iso_code": "SWE", "region": "SE3"},
    "gcp:europe-west1": {"cloud_provider": "gcp", "cloud_region": "europe-west1"},
}
CODECARBON_RUN = r"""
import json, sys, time
from pathlib import Path
from codecarbon import OfflineEmissionsTracker
out, places = Path(sys.argv[1]), json.loads(sys.argv[2])
windows = {}
for key, where in places.items():
    folder = out / key.replace(":", "_")
    folder.mkdir(parents=True)
    tracker = OfflineEmissionsTracker(output_dir=str(folder), save_to_file=True, log_level="error",
                                      measure_power_secs=1, pue=float(sys.argv[3]), **where)
    before = time.time()
    tracker.start()
    sum(i * i for i in range(200_000))
    time.sleep(2.5 if key == "FR" else 0.2)  # FR: long enough for CodeCarbon's 1 s utilisation samples
    tracker.stop()
    windows[key] = [before, time.time()]
print(json.dumps(windows))
"""


def _codecarbon_files(out: Path, env: dict[str, str]) -> tuple[dict[str, pd.DataFrame], dict[str, list[float]]]:
    """CodeCarbon's own emissions.csv for each place, read by pandas, and each tracker's wall-clock window."""
    run = subprocess.run(  # CodeCarbon initialises NVML at import: a fresh process on the simulated GPU
        [sys.executable, "-c", CODECARBON_RUN, str(out), json.dumps(PLACES), str(PUE)],
        env={**env, "TZ": TZ}, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    frames = {key: pd.read_csv(out / key.replace(":", "_") / "emissions.csv") for key in PLACES}
    return frames, json.loads(run.stdout.splitlines()[-1])


def _cli_record(tmp: Path, env: dict[str, str]) -> dict:
    """A record of `airflow-carbon measure --location FR` around a child that sleeps on the simulated GPU."""
    out = tmp / "cli-record.json"
    cmd = [sys.executable, "-m", "airflow_carbon", "measure", "--location", "FR", "--pue", str(PUE), "-o", str(out),
           "--", sys.executable, "-c", "import time; time.sleep(1.5)"]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return load_record(out.read_text())


def _airflow_record(location: str, try_number: int) -> dict:
    """The meter's record with a task's identity added, as the Airflow layer does."""
    with EnergyMeter(location=location, pue=PUE) as meter:
        sum(i * i for i in range(200_000))
    task = {"dag_id": "train_llm", "run_id": "manual__2026-11-28T14:01:47+00:00", "task_id": "train",
            "map_index": 0, "try_number": try_number, "hostname": "gpu-worker-3", "queue": "gpu", "training_type": "fine-tuning"}
    return validate_record({**meter.record, "task": task, "status": "success"})


def _export_cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_carbon", "export", *args], cwd=ROOT, capture_output=True, **kw)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """CodeCarbon's files, our records (CLI first, then one Airflow-style record per place) and our CSV,
    exported by `airflow-carbon export` in the same zone."""
    from carbon_testing import fake_nvml

    tmp = tmp_path_factory.mktemp("export")
    gpu = fake_nvml.activate(GPU)
    try:
        env = {**os.environ, **gpu.env}
        theirs, windows = _codecarbon_files(tmp / "codecarbon", env)
        records = [_cli_record(tmp, env)] + [_airflow_record(key, n) for n, key in enumerate(PLACES, 1)]
    finally:
        gpu.deactivate()
    (tmp / "cli.json").write_text(json.dumps(records[0]))
    (tmp / "airflow.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[1:]))
    result = _export_cli(["--format", "codecarbon", str(tmp / "cli.json"), str(tmp / "airflow.jsonl"), "-o", str(tmp / "emissions.csv")],
                         env={**os.environ, "TZ": TZ})
    assert result.returncode == 0, result.stderr
    ours = pd.read_csv(tmp / "emissions.csv")
    return {"theirs": theirs, "windows": windows, "records": records, "ours": ours, "csv": (tmp / "emissions.csv").read_bytes(),
            "rows": dict(zip(["cli", *PLACES], (r for _, r in ours.iterrows()), strict=True))}


def test_the_columns_are_the_installed_codecarbons(both):
    assert codecarbon.__version__ == CODECARBON_VERSION, "CodeCarbon changed: check EmissionsData and file.py again"
    assert [f.name for f in dataclasses.fields(EmissionsData)] == CODECARBON_COLUMNS
    for frame in both["theirs"].values():
        assert list(frame.columns) == CODECARBON_COLUMNS == list(both["ours"].columns)


def test_the_file_is_byte_for_byte_what_codecarbons_file_output_writes(both, tmp_path):
    out = FileOutput("emissions.csv", str(tmp_path))
    for row in codecarbon_rows(both["records"]):
        out.out(EmissionsData(**row), None)  # CodeCarbon's own writer, one row at a time as its tracker does
    ours_here = records_csv(both["records"])  # this process's zone: the same zone as FileOutput's run here
    assert ours_here == (tmp_path / "emissions.csv").read_bytes()


def test_both_files_parse_together_with_pandas(both):
    frames = [*both["theirs"].values(), both["ours"]]
    together = pd.concat(frames, ignore_index=True)
    stamps = pd.to_datetime(together["timestamp"])  # raised with ours as ...T09:25:52.385Z
    assert stamps.notna().all()
    for column in (f.name for f in dataclasses.fields(EmissionsData) if f.type is float):
        for frame in frames:
            assert pd.api.types.is_numeric_dtype(frame[column]), f"{column} is not numeric: {frame[column].tolist()}"


def test_timestamps_are_local_time_as_codecarbon_writes_them(both):
    offset = pd.Timedelta(hours=5, minutes=30)
    for key, frame in both["theirs"].items():  # CodeCarbon: datetime.now() when it stops, whole seconds
        utc = pd.Timestamp(frame["timestamp"][0]) - offset
        start, end = (pd.Timestamp(t, unit="s") for t in both["windows"][key])
        assert start.floor("s") <= utc <= end, f"CodeCarbon's {key} timestamp is not local time"
    for record, stamp in zip(both["records"], both["ours"]["timestamp"], strict=True):  # ours: the record's end
        ended = pd.Timestamp(record["ended_at"]).tz_convert(None)
        assert pd.Timestamp(stamp) == (ended + offset).floor("s")


def test_locations_follow_codecarbons_codes(both):
    columns = ["country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "on_cloud"]
    for key, frame in both["theirs"].items():
        theirs = frame[columns].iloc[0].fillna("").tolist()
        assert both["rows"][key][columns].fillna("").tolist() == theirs, key
    assert both["rows"]["cli"][columns].fillna("").tolist() == ["France", "FRA", "", "", "", "N"]


def test_every_bundled_location_gets_codecarbons_spelling():
    from codecarbon.input import DataSource

    data = DataSource()
    mix, clouds = data.get_global_energy_mix_data(), data.get_cloud_emissions_data()
    china = data.get_china_provincial_emissions_data()["data"].values()
    regions = {"US": data.get_country_emissions_data("usa"), "CA": data.get_country_energy_mix_data("can"),
               "CN": {name for province in china for name in province["names"]}}
    nordic = {z.lower() for z in data.get_nordic_country_energy_mix_data()["data"]}
    import pycountry  # CodeCarbon's own dependency

    for key in known_locations():
        row = codecarbon_location(lookup_location(key).location)
        country = key.split("-")[0] if ":" not in key and len(key) > 3 else None
        if ":" in key:
            provider, region = key.split(":")
            assert (row["cloud_provider"], row["cloud_region"], row["on_cloud"], row["region"]) == (provider, region, "Y", None)
            known = clouds[(clouds.provider == provider) & (clouds.region == region)]  # GCP only
            if len(known) and key != "gcp:asia-east2":  # Hong Kong: ISO's HKG in our table, CHN in CodeCarbon's
                assert row["country_iso_code"] == known.countryIsoCode.item(), key
            assert row["country_name"] == mix[row["country_iso_code"]]["country_name"], key  # not impact.csv's "USA"
        elif len(key) == 2:
            assert row["country_iso_code"] == pycountry.countries.get(alpha_2=key).alpha_3, key
            assert row["country_name"] == mix[row["country_iso_code"]]["country_name"] and row["region"] is None, key
        elif country in regions:
            assert row["region"] in regions[country], f"{key}: CodeCarbon has no region {row['region']!r}"
        else:
            assert row["region"] in nordic, f"{key}: CodeCarbon has no Nordic zone {row['region']!r}"
        assert len(row["country_iso_code"]) == 3 and row["country_name"], key
    assert codecarbon_location(None) == codecarbon_location("XX-NOWHERE") == {
        "country_name": None, "country_iso_code": None, "region": None, "cloud_provider": None, "cloud_region": None, "on_cloud": "N"}


def test_emissions_over_energy_is_the_intensity_pue_included_as_codecarbon(both):
    for key in ["cli", *PLACES]:
        row, record = both["rows"][key], both["records"][["cli", *PLACES].index(key)]
        assert row["energy_consumed"] == pytest.approx(record["energy_kwh"] * PUE, rel=1e-12)
        assert row["emissions"] / row["energy_consumed"] == pytest.approx(record["intensity"]["g_per_kwh"] / 1000, rel=1e-9)
        assert row["cpu_energy"] + row["gpu_energy"] + row["ram_energy"] == pytest.approx(row["energy_consumed"], rel=1e-9)
        for name in ("cpu", "gpu", "ram"):
            assert row[f"{name}_power"] * row["duration"] / 3.6e6 == pytest.approx(row[f"{name}_energy"], rel=1e-9)
        assert row["pue"] == PUE
    theirs = both["theirs"]["FR"].iloc[0]  # the table's France figure is the one CodeCarbon ships
    ours = both["rows"]["cli"]
    assert ours["emissions"] / ours["energy_consumed"] == pytest.approx(theirs["emissions"] / theirs["energy_consumed"], rel=1e-3)
    assert ours["gpu_power"] == pytest.approx(200 * PUE, rel=0.02) and theirs["gpu_power"] == pytest.approx(200 * PUE, rel=0.05)


def test_hardware_and_utilisation_follow_codecarbons_conventions(both):
    theirs, ours = both["theirs"]["FR"].iloc[0], both["rows"]["cli"]
    same = ["cpu_count", "gpu_count", "gpu_model", "os", "python_version", "gpu_utilization_percent"]
    assert ours[same].tolist() == theirs[same].tolist()  # logical CPUs; "1 x NVIDIA H200"; 29 % on this GPU
    assert ours["ram_total_size"] == pytest.approx(theirs["ram_total_size"], rel=1e-6)  # the machine's RAM, GiB
    record = both["records"][0]
    assert ours["ram_used_gb"] == pytest.approx(record["components"]["ram"]["mean_rss_gb"] * 1e9 / 2**30)
    assert 0 < ours["ram_utilization_percent"] < 100 and 0 <= ours["cpu_utilization_percent"] <= 100
    assert ours["tracking_mode"] == "process" and theirs["tracking_mode"] == "machine"
    for column in ("water_consumed", "wue", "longitude", "latitude", "codecarbon_version"):
        assert pd.isna(ours[column]), f"{column} is not something a record knows; it must stay empty"


def test_cli_and_airflow_records_name_their_run(both):
    cli, airflow = both["rows"]["cli"], both["rows"]["FR"]
    record = both["records"][0]
    assert (cli["project_name"], cli["run_id"]) == ("airflow-carbon", f"{record['host']}@{record['started_at']}")
    assert pd.isna(cli["experiment_id"])
    assert (airflow["project_name"], airflow["run_id"], airflow["experiment_id"]) == ("train_llm", "manual__2026-11-28T14:01:47+00:00", "train[0]#1")


def test_a_record_without_the_newer_fields_exports_empty_cells(both):
    old = json.loads(json.dumps(both["records"][0]))
    for name in ("logical_cpus", "mean_utilization_percent"):
        old["components"]["cpu"].pop(name)
    for name in ("host_total_gb", "mean_utilization_percent"):
        old["components"]["ram"].pop(name)
    for gpu in old["gpus"]:
        del gpu["mean_utilization_percent"], gpu["utilization_samples"]
    old["measured_by"] = {"package": "airflow-carbon", "version": "0.1.0"}
    row = pd.read_csv(io.BytesIO(records_csv([validate_record(old)]))).iloc[0]
    empty = ["cpu_count", "ram_total_size", "cpu_utilization_percent", "gpu_utilization_percent", "ram_utilization_percent", "os", "python_version"]
    assert row[empty].isna().all(), row[empty].to_dict()
    assert row["ram_used_gb"] > 0 and row["gpu_count"] == 1  # what old records hold is still exported


def test_a_missing_component_is_an_empty_cell_not_zero(both):
    record = json.loads(json.dumps(both["records"][1]))
    record["components"]["gpu"] = {"energy_kwh": None, "method": "missing"}
    row = pd.read_csv(io.BytesIO(records_csv([validate_record(record)]))).iloc[0]
    assert pd.isna(row["gpu_energy"]) and pd.isna(row["gpu_power"]) and not pd.isna(row["cpu_energy"])


# -- the command --------------------------------------------------------------------------------------
def test_export_writes_json_lists_and_jsonl_to_stdout(both, tmp_path):
    records = both["records"]
    (tmp_path / "list.json").write_text(json.dumps(records[:2], indent=2))
    (tmp_path / "more.jsonl").write_text("\n" + json.dumps(records[2]) + "\n\n" + json.dumps(records[3]) + "\n")
    result = _export_cli([str(tmp_path / "list.json"), str(tmp_path / "more.jsonl")])
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.BytesIO(result.stdout))
    assert list(frame.columns) == CODECARBON_COLUMNS and len(frame) == 4
    assert frame["emissions"].tolist() == pytest.approx([r["emissions_g"] / 1000 for r in records[:4]], rel=1e-12)


@pytest.mark.parametrize(
    "name, text, where, message",
    [
        ("bad.jsonl", "{good}\n{good}\n\n{bad}\n", ":4:", "invalid record field components.gpu.method"),
        ("bad.json", "[\n  {good},\n  {bad}\n]\n", ":3:", "invalid record field components.gpu.method"),
        ("bad.json", "{bad}", ":1:", "invalid record field components.gpu.method"),
        ("broken.json", "[{good},\n {good}\n {good}]", ":3:", "not JSON"),
        ("broken.jsonl", "{good}\n{\"schema_version\": 1,\n", ":2:", "not JSON"),
    ],
)
def test_a_bad_record_exits_2_naming_file_line_and_field_and_writes_nothing(both, tmp_path, name, text, where, message):
    good = json.loads(json.dumps(both["records"][1]))
    bad = json.loads(json.dumps(good))
    bad["components"]["gpu"]["method"] = "guessed"
    path = tmp_path / name
    path.write_text(text.replace("{good}", json.dumps(good)).replace("{bad}", json.dumps(bad)))
    out = tmp_path / "emissions.csv"
    result = _export_cli([str(path), "-o", str(out)], text=True)
    assert result.returncode == 2
    assert f"{path}{where}" in result.stderr and message in result.stderr, result.stderr
    assert not out.exists()


def test_only_the_codecarbon_format_and_existing_files_are_accepted(tmp_path):
    result = _export_cli(["--format", "parquet", str(tmp_path / "x.json")], text=True)
    assert result.returncode == 2 and "invalid choice: 'parquet'" in result.stderr
    result = _export_cli([str(tmp_path / "absent.json")], text=True)
    assert result.returncode == 2 and f"{tmp_path / 'absent.json'}: cannot read it" in result.stderr
