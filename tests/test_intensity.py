"""Tests for the bundled grid-intensity table and airflow_carbon.core.intensity."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_carbon.core.intensity import (
    GridIntensity,
    UnknownLocationError,
    known_locations,
    lookup_location,
    resolve_intensity,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
TABLE_PATH = REPO / "airflow_carbon" / "core" / "data" / "grid_intensity.json"
DATA_DIR = REPO.parent / "shared" / "data"
CC_DIR = DATA_DIR / "codecarbon-3.3.2"  # refreshed CodeCarbon copies the table is built from
BUILD_SCRIPT = REPO / "tools" / "build_intensity_table.py"

needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"raw data dir {DATA_DIR} not available")


@pytest.fixture(scope="module")
def table() -> dict:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


# --- countries ---------------------------------------------------------------


def test_france_by_code_alpha3_and_name_is_the_same_entry():
    by_code, by_a3, by_name = (lookup_location(x) for x in ("FR", "FRA", "France"))
    assert by_code == by_a3 == by_name
    assert by_code.location == "FR"
    assert by_code.name == "France"
    assert by_code.method == "dataset"
    assert by_code.license == "CC-BY-4.0"
    assert "Our World in Data" in by_code.source


@needs_data
def test_france_figure_matches_owid_raw_file():
    raw = json.loads((DATA_DIR / "codecarbon" / "global_energy_mix.json").read_text(encoding="utf-8"))
    fr = lookup_location("france")
    assert fr.g_per_kwh == pytest.approx(raw["FRA"]["carbon_intensity"], abs=1e-3)
    assert fr.year == raw["FRA"]["year"]


def test_input_normalisation():
    assert lookup_location("  united   KINGDOM ").location == "GB"
    assert lookup_location("UK").location == "GB"
    assert lookup_location("USA").location == "US"
    assert lookup_location("United States").location == "US"
    assert lookup_location("Côte d'Ivoire").location == lookup_location("cote d'ivoire").location == "CI"
    # "CA" is Canada; US states need "US-CA" or the name.
    assert lookup_location("CA").location == "CA"
    assert lookup_location("us_ca").location == "US-CA"


# --- subdivisions -------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["US-CA", "California", "California, USA", "california,usa", "California, United States"]
)
def test_california_aliases(text):
    got = lookup_location(text)
    assert got.location == "US-CA"
    assert got.name == "California, USA"


@needs_data
def test_us_state_converted_from_lb_per_mwh():
    raw = json.loads((CC_DIR / "2023-usa_emissions.json").read_text(encoding="utf-8"))
    tx = lookup_location("US-TX")
    assert tx.g_per_kwh == pytest.approx(raw["texas"]["emissions"] * 0.453592, abs=1e-3)
    assert tx.year == 2023
    assert tx.license == "US-Government-Public-Domain"
    assert "eGRID2023" in tx.source


@pytest.mark.parametrize("text", ["CA-QC", "Quebec", "Québec", "QUÉBEC, Canada", "quebec, canada"])
def test_quebec(text):
    qc = lookup_location(text)
    assert qc.location == "CA-QC"
    assert qc.name == "Quebec, Canada"


def test_quebec_far_cleaner_than_alberta():
    qc, ab = lookup_location("CA-QC"), lookup_location("Alberta")
    assert qc.g_per_kwh * 10 < ab.g_per_kwh
    assert "biomass" in qc.source  # the mix-to-intensity choice is recorded


def test_georgia_is_the_country_unless_qualified():
    assert lookup_location("Georgia").location == "GE"
    assert lookup_location("Georgia, USA").location == "US-GA"


def test_nordic_zones():
    se1 = lookup_location("se1")
    assert se1.location == "SE1"
    assert se1.year == 2025
    assert lookup_location("NO5").location == "NO5"


# --- cloud regions --------------------------------------------------------------


@needs_data
def test_gcp_us_central1_comes_from_google_2024_not_ccf():
    with (DATA_DIR / "gcp-region-carbon" / "2024.csv").open(encoding="utf-8-sig", newline="") as fh:
        google = {r["Google Cloud Region"]: float(r["Grid carbon intensity (gCO2eq / kWh)"]) for r in csv.DictReader(fh)}
    with (DATA_DIR / "ccf" / "grid-emissions-factors-gcp.csv").open(encoding="utf-8-sig", newline="") as fh:
        ccf = {r["Region"]: float(r["CO2e (metric ton/kWh)"]) * 1e6 for r in csv.DictReader(fh)}
    got = lookup_location("gcp:us-central1")
    assert got.g_per_kwh == pytest.approx(google["us-central1"], abs=1e-3)
    assert got.g_per_kwh != pytest.approx(ccf["us-central1"], abs=1)
    assert got.year == 2024
    assert got.license == "Apache-2.0"


def test_gcp_region_forms():
    got = lookup_location("gcp:us-central1")
    assert got.name == "us-central1 (Iowa, USA), Google Cloud"
    assert "Google region-carbon-info 2024" in got.source
    for text in ("us-central1", "GCP/us-central1", "google:us-central1", "gcp:US_CENTRAL1"):
        assert lookup_location(text).location == "gcp:us-central1", text


def test_aws_and_azure_present():
    aws = lookup_location("aws:us-east-1")
    assert aws.location == "aws:us-east-1"
    assert lookup_location("us-east-1").location == "aws:us-east-1"
    assert "Cloud Carbon Footprint" in aws.source
    for text in ("azure:eastus", "eastus", "East US", "azure:East US", "azure/eastus"):
        assert lookup_location(text).location == "azure:eastus", text
    assert "Azure" in lookup_location("eastus").name


@needs_data
def test_aws_converted_from_tonnes_per_kwh():
    with (DATA_DIR / "ccf" / "grid-emissions-factors-aws.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = {r["Region"]: float(r["CO2e (metric ton/kWh)"]) for r in csv.DictReader(fh)}
    assert lookup_location("aws:eu-west-3").g_per_kwh == pytest.approx(rows["eu-west-3"] * 1e6, abs=1e-3)


# --- errors ---------------------------------------------------------------------


def test_unknown_location_suggests_close_matches():
    with pytest.raises(UnknownLocationError) as exc:
        lookup_location("Frnace")
    msg = str(exc.value)
    assert "Frnace" in msg
    assert "France" in msg
    assert "US-CA" in msg and "gcp:us-central1" in msg  # says which forms are accepted
    assert isinstance(exc.value, ValueError)


def test_unknown_location_in_resolve_raises():
    with pytest.raises(UnknownLocationError):
        resolve_intensity("Atlantis")


@pytest.mark.parametrize("bad", ["", "   ", "\t"])
def test_empty_location_rejected(bad):
    with pytest.raises(ValueError, match="empty"):
        resolve_intensity(bad)
    with pytest.raises(ValueError):
        lookup_location(bad)


# --- resolve_intensity --------------------------------------------------------------


def test_explicit_value_beats_location():
    got = resolve_intensity("FR", g_per_kwh=300)
    assert got.g_per_kwh == 300.0
    assert got.method == "explicit"
    assert got.source == "user-provided"
    assert got.location == "FR"
    assert got.name == "France"


def test_explicit_value_with_free_text_location_keeps_text():
    got = resolve_intensity("Brooklyn, NY, USA", g_per_kwh=250.5)
    assert got.name == "Brooklyn, NY, USA"
    assert got.location is None
    assert got.method == "explicit"
    assert got.g_per_kwh == 250.5


def test_explicit_zero_is_allowed():
    assert resolve_intensity(g_per_kwh=0).g_per_kwh == 0.0


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), "abc", True, [1]])
def test_bad_explicit_values_rejected_naming_the_value(bad):
    with pytest.raises(ValueError) as exc:
        resolve_intensity("FR", g_per_kwh=bad)
    assert repr(bad) in str(exc.value)


def test_location_from_dataset():
    got = resolve_intensity("Quebec")
    assert got == lookup_location("CA-QC")
    assert got.warnings == ()


def test_no_location_gives_world_average_with_warning():
    got = resolve_intensity()
    assert got.g_per_kwh == 475.0
    assert got.method == "world-average"
    assert got.location is None
    assert got.name == "World average"
    assert got.warnings and "location" in got.warnings[0]


def test_to_dict_is_json_serialisable():
    d = lookup_location("CA-QC").to_dict()
    assert set(d) == {"g_per_kwh", "location", "name", "source", "year", "license", "method", "emission_factor"}
    assert json.loads(json.dumps(d)) == d
    assert isinstance(lookup_location("FR"), GridIntensity)


# --- table integrity -------------------------------------------------------------


def test_every_entry_is_complete(table):
    assert table["locations"], "empty table"
    kinds = {"country", "region", "cloud", "zone"}
    for key, entry in table["locations"].items():
        assert entry["kind"] in kinds, key
        assert entry["source"], key
        assert isinstance(entry["year"], int) and 1990 <= entry["year"] <= 2030, key
        assert entry["license"], key
        assert entry["name"], key
        g = entry["g_per_kwh"]
        assert isinstance(g, (int, float)) and math.isfinite(g) and 0 < g < 2000, key
    wa = table["world_average"]
    assert wa["g_per_kwh"] == 475 and wa["source"] and wa["license"] and wa["year"]
    assert {s["license"] for s in table["sources"]} >= {"CC-BY-4.0", "Apache-2.0", "US-Government-Public-Domain", "MIT"}


def test_aliases_point_to_known_keys(table):
    keys = set(table["locations"])
    assert set(table["aliases"].values()) <= keys
    assert set(known_locations()) == keys
    assert known_locations() == sorted(keys)


@needs_data
@pytest.mark.skipif(importlib.util.find_spec("pycountry") is None, reason="pycountry not installed")
def test_committed_table_matches_regenerated(tmp_path):
    out = tmp_path / "grid_intensity.json"
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--data-dir", str(DATA_DIR), "--out", str(out), "--quiet"],
        check=True,
        cwd=REPO,
    )
    assert out.read_bytes() == TABLE_PATH.read_bytes(), "run tools/build_intensity_table.py and commit the result"


def test_import_is_lazy():
    code = (
        "import sys\n"
        "import airflow_carbon.core.intensity as m\n"
        "bad = [n for n in sys.modules if n == 'airflow' or n.startswith('airflow.') or n == 'pycountry']\n"
        "assert not bad, bad\n"
        "assert m.bundled_data.cache_info().currsize == 0, 'table loaded at import'\n"
        "m.lookup_location('FR')\n"
        "assert m.bundled_data.cache_info().currsize == 1\n"
        "assert 'pycountry' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- refreshed data (CodeCarbon 3.3.2 copies) and the emission-factor basis ----------------------


def _raw(name: str) -> dict:
    return json.loads((CC_DIR / name).read_text(encoding="utf-8"))


@needs_data
@pytest.mark.parametrize("zone", ["SE1", "SE2", "SE3", "SE4", "NO1", "NO2", "NO3", "NO4", "NO5"])
def test_nordic_zones_carry_the_2025_figures_not_the_placeholder(zone):
    old = json.loads((DATA_DIR / "codecarbon" / "nordic_emissions.json").read_text(encoding="utf-8"))["data"][zone]
    new = _raw("nordic_emissions.json")["data"][zone]
    got = lookup_location(zone)
    assert old["emission_factor"] == 18.0  # the older file's placeholder
    assert got.g_per_kwh != 18.0
    assert got.g_per_kwh == pytest.approx(new["emission_factor"], abs=1e-3)
    assert got.year == new["year"] == 2025
    assert new["coverage"] in got.source  # how much of the zone's generation had a factor
    assert got.emission_factor == "lifecycle"


def test_se3_and_no1_are_not_the_placeholder():
    assert lookup_location("SE3").g_per_kwh != 18.0
    assert lookup_location("NO1").g_per_kwh != 18.0


@needs_data
def test_texas_from_egrid2023_is_about_350_and_direct():
    raw = _raw("2023-usa_emissions.json")
    assert raw["_source"]["field"] == "STC2ERTA" and raw["_unit"]["emissions"] == "lbs/MWh"
    tx = lookup_location("Texas, USA")
    assert tx.g_per_kwh == pytest.approx(raw["texas"]["emissions"] * 0.453592, abs=1e-3)
    assert tx.g_per_kwh == pytest.approx(350, abs=5)
    assert tx.emission_factor == "direct"
    assert tx.source.startswith("EPA eGRID2023")


@needs_data
def test_alberta_uses_a_gas_plant_factor_not_codecarbons_generic_743():
    mix = _raw("2023-canada_energy_mix.json")["alberta"]
    factors = _raw("carbon_intensity_per_source.json")
    per_source = {
        "coal": factors["coal"], "petroleum": factors["petroleum"], "nuclear": factors["nuclear"],
        "hydro": factors["hydroelectricity"], "wind": factors["wind"], "solar": factors["solar"],
        "biomass": factors["biomass"], "tidal": 17.0,
        "naturalGas": 490.0,  # IPCC AR5 WG3 Annex III lifecycle median, gas combined cycle
    }
    shares = {k: v for k, v in mix.items() if k in per_source}
    expected = sum(v * per_source[k] for k, v in shares.items()) / sum(shares.values())
    inflated = expected + shares["naturalGas"] * (factors["natural_gas"] - 490.0) / sum(shares.values())
    ab = lookup_location("CA-AB")
    assert ab.g_per_kwh == pytest.approx(expected, abs=1e-3)
    assert ab.g_per_kwh < inflated - 150  # the old figure, with 743 g/kWh for gas
    assert ab.emission_factor == "lifecycle" and "natural gas 490" in ab.source


def test_every_entry_has_an_emission_factor_basis(table):
    for key, entry in table["locations"].items():
        assert entry["emission_factor"] in ("lifecycle", "direct"), key
    assert table["world_average"]["emission_factor"] == "direct"
    for source in table["sources"]:
        assert source["emission_factor"] in ("lifecycle", "direct") and source["basis"], source["id"]
    for row in table["superseded"]:
        assert row["dropped_emission_factor"] in ("lifecycle", "direct") and row["kept_emission_factor"]


@pytest.mark.parametrize(
    "location, basis",
    [
        ("FR", "lifecycle"), ("NO", "lifecycle"), ("CA-QC", "lifecycle"),  # why they exceed national (direct) references
        ("US-TX", "direct"), ("CN-BJ", "direct"), ("gcp:europe-west9", "direct"), ("aws:eu-west-3", "direct"),
    ],
)
def test_basis_is_shown_per_location(location, basis):
    got = lookup_location(location)
    assert got.emission_factor == basis
    assert got.to_dict()["emission_factor"] == basis


@needs_data
@pytest.mark.parametrize(
    "text",
    ["CN-BJ", "cn_bj", "Beijing", "Beijing, China", "Beijing Shi", "BJ, China", "Beijing Municipality"],
)
def test_china_province_by_code_and_name(text):
    raw = _raw("2023-china_provincial_emissions.json")["data"]["CN-BJ"]
    got = lookup_location(text)
    assert got.location == "CN-BJ"
    assert got.name == "Beijing, China"
    assert got.g_per_kwh == pytest.approx(raw["emission_factor"], abs=1e-3)
    assert got.year == raw["year"]
    assert got.emission_factor == "direct" and "CO2 only" in got.source


@needs_data
def test_every_chinese_province_in_the_file_is_in_the_table_and_china_stays_a_country():
    raw = _raw("2023-china_provincial_emissions.json")["data"]
    for code, row in raw.items():
        got = lookup_location(code)
        assert got.g_per_kwh == pytest.approx(row["emission_factor"], abs=1e-3), code
        for name in row["names"]:
            assert lookup_location(name).location == code, name
    assert lookup_location("Inner Mongolia").location == lookup_location("Nei Mongol Zizhiqu").location == "CN-NM"
    assert lookup_location("Sichuan Province").location == "CN-SC"
    cn = lookup_location("China")
    assert cn.location == "CN" and cn.emission_factor == "lifecycle"
    with pytest.raises(UnknownLocationError):  # not in the official table: use "CN"
        lookup_location("Xizang")


def test_explicit_value_basis_is_unstated_unless_given():
    assert resolve_intensity("FR", g_per_kwh=300).emission_factor is None
    assert resolve_intensity("FR", g_per_kwh=30, emission_factor="direct").emission_factor == "direct"
    with pytest.raises(ValueError, match="'operational'"):
        resolve_intensity(g_per_kwh=30, emission_factor="operational")
    with pytest.raises(ValueError, match="explicit g_per_kwh"):
        resolve_intensity("FR", emission_factor="direct")


def test_record_intensity_carries_the_basis_and_validates():
    from airflow_carbon import EnergyMeter, RecordError, validate_record
    from airflow_carbon.cli import summary
    from airflow_carbon.core.report import records_table

    with EnergyMeter(location="NO1", cuda_visible_devices="") as meter:
        pass
    record = validate_record(meter.record)
    assert record["intensity"]["emission_factor"] == "lifecycle"
    assert "gCO2e/kWh (lifecycle)" in summary(record)
    record["task"] = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
    assert "gCO2e/kWh (lifecycle) [dataset:" in records_table([record])
    for value in (None, "direct"):
        validate_record({**record, "intensity": {**record["intensity"], "emission_factor": value}})
    old = {**record, "intensity": {k: v for k, v in record["intensity"].items() if k != "emission_factor"}}
    validate_record(old)  # records written before the field existed stay valid
    with pytest.raises(RecordError, match=r"intensity\.emission_factor"):
        validate_record({**record, "intensity": {**record["intensity"], "emission_factor": "operational"}})


@needs_data
@pytest.mark.skipif(importlib.util.find_spec("pycountry") is None, reason="pycountry not installed")
def test_table_builds_without_the_superseded_raw_files(tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    (data / "codecarbon").chmod(0o755)  # the shared inputs are read-only
    for name in ("2016-usa_emissions.json", "nordic_emissions.json", "carbon_intensity_per_source.json",
                 "global_energy_mix.json", "2023-canada_energy_mix.json"):
        (data / "codecarbon" / name).unlink()
    out = tmp_path / "grid_intensity.json"
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--data-dir", str(data), "--out", str(out), "--quiet"],
        check=True,
        cwd=REPO,
    )
    assert out.read_bytes() == TABLE_PATH.read_bytes()
