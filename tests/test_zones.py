"""The live sources' zones of the bundled locations (core/zones.py, core/data/intensity_zones.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_carbon.core.intensity import known_locations, location_entry
from airflow_carbon.core.zones import LIVE_SOURCES, ZoneError, zone_for, zones

pytestmark = pytest.mark.unit

TABLE_PATH = Path(__file__).resolve().parent.parent / "airflow_carbon" / "core" / "data" / "intensity_zones.json"

# Electricity Maps: 'FR', 'SE-SE3', 'US-CAL-CISO', 'AU-TAS-CBI'; WattTime: 'CAISO_NORTH', 'UK', 'JP_TK';
# GB Carbon Intensity: national (None), a region id 1-17 or an outward postcode.
PATTERNS = {
    "electricitymaps": re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,5}){0,2}$"),
    "watttime": re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$"),
    "uk_carbon_intensity": re.compile(r"^(?:[1-9]|1[0-7]|[A-Z]{1,2}[0-9][A-Z0-9]?)$"),
}


@pytest.fixture(scope="module")
def table() -> dict:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("source", "location", "zone"),
    [
        ("electricitymaps", "FR", "FR"),
        ("electricitymaps", "France", "FR"),
        ("electricitymaps", "DE", "DE"),
        ("electricitymaps", "SE3", "SE-SE3"),
        ("electricitymaps", "NO1", "NO-NO1"),
        ("electricitymaps", "California, USA", "US-CAL-CISO"),
        ("electricitymaps", "US-TX", "US-TEX-ERCO"),
        ("electricitymaps", "US-NY", "US-NY-NYIS"),
        ("electricitymaps", "Quebec", "CA-QC"),
        ("electricitymaps", "CA-ON", "CA-ON"),
        ("electricitymaps", "gcp:europe-west2", "GB"),
        ("electricitymaps", "aws:eu-west-2", "GB"),
        ("electricitymaps", "gcp:us-central1", "US-MIDW-MISO"),
        ("electricitymaps", "aws:us-east-1", "US-MIDA-PJM"),
        ("electricitymaps", "azure:East US", "US-MIDA-PJM"),
        ("electricitymaps", "gcp:australia-southeast1", "AU-NSW"),
        ("electricitymaps", "aws:ap-northeast-1", "JP-TK"),
        ("electricitymaps", "aws:eu-north-1", "SE-SE3"),
        ("watttime", "US-CA", "CAISO_NORTH"),
        ("watttime", "California", "CAISO_NORTH"),
        ("watttime", "aws:us-west-2", "BPA"),
        ("watttime", "gcp:us-east4", "PJM_DC"),
        ("watttime", "gcp:us-central1", "MISO_MASON_CITY"),
        ("watttime", "GB", "UK"),
        ("watttime", "CA-ON", "IESO_NORTH"),
        ("uk_carbon_intensity", "GB", None),
        ("uk_carbon_intensity", "United Kingdom", None),
        ("uk_carbon_intensity", "gcp:europe-west2", None),
        ("uk_carbon_intensity", "azure:uksouth", None),
    ],
)
def test_a_location_maps_to_the_sources_zone(source, location, zone):
    assert zone_for(source, location) == zone


def test_countries_keep_their_code_in_electricity_maps():
    em = zones("electricitymaps")
    countries = [key for key in known_locations() if location_entry(key)["kind"] == "country"]
    assert countries and all(em[key] == key for key in countries)


def test_uk_carbon_intensity_covers_great_britain_only():
    with pytest.raises(ZoneError, match="Great Britain only") as err:
        zone_for("uk_carbon_intensity", "FR")
    message = str(err.value)
    assert "uk_carbon_intensity" in message and "'FR'" in message and "intensity_zone" in message
    assert err.value.source == "uk_carbon_intensity" and err.value.location == "FR"
    assert set(zones("uk_carbon_intensity")) == {"GB", "aws:eu-west-2", "gcp:europe-west2", "azure:uksouth", "azure:ukwest"}


@pytest.mark.parametrize(
    ("source", "location"),
    [("watttime", "US-AK"), ("watttime", "FJ"), ("electricitymaps", "Atlantis"), ("watttime", "  ")],
)
def test_an_unmapped_or_unknown_location_says_to_set_intensity_zone(source, location):
    with pytest.raises(ZoneError) as err:
        zone_for(source, location)
    message = str(err.value)
    assert source in message and repr(location) in message and "intensity_zone" in message
    assert isinstance(err.value, ValueError)


def test_no_location_is_a_zone_error():
    with pytest.raises(ZoneError, match="intensity_zone") as err:
        zone_for("electricitymaps", None)
    assert "electricitymaps" in str(err.value) and err.value.location is None


def test_an_unknown_source_names_the_accepted_ones():
    with pytest.raises(ValueError, match="unknown live source 'nope'") as err:
        zone_for("nope", "FR")
    assert not isinstance(err.value, ZoneError)
    assert all(source in str(err.value) for source in LIVE_SOURCES)
    with pytest.raises(ValueError, match="electricitymaps, watttime, uk_carbon_intensity"):
        zones("nope")


def test_a_non_string_location_is_a_type_error():
    with pytest.raises(TypeError, match="location must be a string"):
        zone_for("electricitymaps", 42)  # type: ignore[arg-type]


def test_zones_is_a_copy():
    first = zones("electricitymaps")
    first["FR"] = "XX"
    first["ZZ"] = "ZZ"
    assert zone_for("electricitymaps", "FR") == "FR"
    assert "ZZ" not in zones("electricitymaps")


def test_the_table_has_every_live_source(table):
    assert set(table["zones"]) == set(LIVE_SOURCES)
    for source in LIVE_SOURCES:
        assert table["zones"][source]["basis"].strip()
        assert zones(source)


def test_every_key_is_a_canonical_location(table):
    canonical = set(known_locations())
    for source, block in table["zones"].items():
        assert set(block["zones"]) <= canonical, (source, sorted(set(block["zones"]) - canonical))
        assert set(block["notes"]) <= set(block["zones"]), (source, sorted(set(block["notes"]) - set(block["zones"])))


@pytest.mark.parametrize("source", LIVE_SOURCES)
def test_every_zone_matches_its_sources_code_pattern(source):
    bad = {key: zone for key, zone in zones(source).items() if zone is not None and not PATTERNS[source].match(zone)}
    assert not bad
    if source != "uk_carbon_intensity":
        assert None not in zones(source).values()


def test_the_sources_are_named_by_repository_and_path(table):
    assert table["sources"]
    for entry in table["sources"]:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry["repo"]), entry
        assert entry["path"] and entry["used_for"], entry


def test_coverage():
    # electricitymaps: every bundled location; watttime: the US, the regions WattTime covers, the cloud regions
    assert set(zones("electricitymaps")) == set(known_locations())
    wt = zones("watttime")
    assert len(wt) >= 150
    cloud = [key for key in known_locations() if location_entry(key)["kind"] == "cloud"]
    assert all(key in wt for key in cloud)
