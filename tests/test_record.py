import copy
import json

import pytest

from airflow_carbon import EnergyMeter, RecordError, load_record, validate_record

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def record():
    with EnergyMeter(location="FR", cuda_visible_devices="") as meter:
        sum(i * i for i in range(10_000))
    return meter.record


def test_a_measured_record_validates_and_round_trips_through_json(record):
    text = json.dumps(record)
    assert load_record(text) == record
    assert record["schema_version"] == 2
    assert record["started_at"].endswith("Z") and record["ended_at"] >= record["started_at"]


def test_every_component_names_its_method(record):
    for component in record["components"].values():
        assert component["method"] in {"counter", "sampled", "rapl", "estimated", "mixed", "none", "missing"}


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("components", "gpu", "method"), "guessed", "components.gpu.method"),
        (("emissions_g",), -1, "emissions_g"),
        (("intensity", "g_per_kwh"), "high", "intensity.g_per_kwh"),
        (("schema_version",), 3, "schema_version"),
    ],
)
def test_invalid_field_is_named(record, path, value, field):
    bad = copy.deepcopy(record)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecordError) as err:
        validate_record(bad)
    assert f"field {field}:" in str(err.value)


def test_missing_field_and_bad_json_are_reported(record):
    bad = copy.deepcopy(record)
    del bad["pue"]
    with pytest.raises(RecordError, match="'pue' is a required property"):
        validate_record(bad)
    with pytest.raises(RecordError, match="must be JSON"):
        load_record("{not json")
