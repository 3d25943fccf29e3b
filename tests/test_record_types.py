"""The record's TypedDicts and its JSON Schema say the same thing: the same fields at every level, the
same required ones, compatible JSON types; and the shared helpers (component names, sort key, task label,
hardware rule) and the version dispatch behave as documented."""

from __future__ import annotations

import copy
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from airflow_carbon.core import record as rec
from airflow_carbon.core.record import (
    COMPONENTS,
    BudgetEntry,
    Component,
    Components,
    GpuEntry,
    Intensity,
    MeasuredBy,
    Record,
    RecordError,
    Shift,
    TaskIdentity,
    device_counts,
    format_hardware,
    load_record,
    record_schema,
    sort_key,
    task_label,
    upgrade,
    validate_record,
)

pytestmark = pytest.mark.unit

_SCALARS = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null", dict: "object"}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node, root)


def _schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (resolved) schema accepts, or its enum/const values as 'enum:' entries."""
    if "const" in schema:
        return {f"enum:{schema['const']!r}"}
    if "enum" in schema:
        return {"null" if v is None else f"enum:{v!r}" for v in schema["enum"]}
    kind = schema.get("type")
    assert kind is not None, f"a schema without type, enum or const: {schema}"
    return set(kind) if isinstance(kind, list) else {kind}


def mismatches(tp: Any, schema: dict[str, Any], root: dict[str, Any], path: str) -> list[str]:
    """Where the annotation ``tp`` and the JSON Schema ``schema`` disagree, as 'path: why' lines."""
    schema = _resolve(schema, root)
    if is_typeddict(tp):
        if schema.get("type") != "object":
            return [f"{path}: {tp.__name__} is an object, the schema says {schema.get('type')!r}"]
        hints = get_type_hints(tp)
        props = schema.get("properties", {})
        out = [f"{path}.{k}: in {tp.__name__}, not in the schema" for k in sorted(set(hints) - set(props))]
        out += [f"{path}.{k}: in the schema, not in {tp.__name__}" for k in sorted(set(props) - set(hints))]
        required = set(schema.get("required", []))
        if required != set(tp.__required_keys__):
            out.append(f"{path}: required {sorted(required)} in the schema, {sorted(tp.__required_keys__)} in {tp.__name__}")
        for key in sorted(set(hints) & set(props)):
            out += mismatches(hints[key], props[key], root, f"{path}.{key}")
        return out
    members = get_args(tp) if get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    ours: set[str] = set()
    out = []
    for member in members:
        if get_origin(member) is Literal:
            ours |= {f"enum:{v!r}" for v in get_args(member)}
        elif get_origin(member) is list:
            ours.add("array")
            if "items" in schema:
                out += mismatches(get_args(member)[0], schema["items"], root, f"{path}[]")
        elif is_typeddict(member):
            ours.add("object")
            out += mismatches(member, schema, root, path)
        elif member in _SCALARS:
            ours.add(_SCALARS[member])
        else:
            out.append(f"{path}: no JSON type for {member!r}")
    theirs = _schema_types(schema)
    if ours != theirs:
        out.append(f"{path}: the type says {sorted(ours)}, the schema {sorted(theirs)}")
    return out


def test_the_record_types_and_the_schema_agree():
    schema = record_schema()
    assert mismatches(Record, schema, schema, "record") == []


@pytest.mark.parametrize("tp, where", [
    (Component, ("$defs", "component")),
    (GpuEntry, ("$defs", "gpu")),
    (Intensity, ("properties", "intensity")),
    (MeasuredBy, ("properties", "measured_by")),
    (TaskIdentity, ("properties", "task")),
    (Shift, ("properties", "shift")),
    (BudgetEntry, ("properties", "budget")),
    (Components, ("properties", "components")),
])
def test_every_part_agrees_with_its_schema(tp, where):
    schema = record_schema()
    part = schema
    for key in where:
        part = part[key]
    assert mismatches(tp, part, schema, tp.__name__) == []


def test_the_component_names_are_the_schemas():
    schema = record_schema()["properties"]["components"]
    assert list(COMPONENTS) == schema["required"] == list(schema["properties"]) == list(get_type_hints(Components))


def test_a_field_added_to_one_side_only_is_caught():
    schema = copy.deepcopy(record_schema())
    schema["$defs"]["gpu"]["properties"]["memory_gb"] = {"type": "number"}
    assert mismatches(Record, schema, schema, "record") == ["record.gpus[].memory_gb: in the schema, not in GpuEntry"]

    class Extended(TaskIdentity):
        pool: str

    assert mismatches(Extended, record_schema()["properties"]["task"], schema, "task") == [
        "task.pool: in Extended, not in the schema",
        ("task: required ['dag_id', 'map_index', 'run_id', 'task_id', 'try_number'] in the schema, "
         "['dag_id', 'map_index', 'pool', 'run_id', 'task_id', 'try_number'] in Extended"),
    ]


def test_a_type_or_requirement_that_differs_is_caught():
    schema = copy.deepcopy(record_schema())
    schema["properties"]["intensity"]["properties"]["year"] = {"type": "string"}
    schema["properties"]["measured_by"]["required"].append("os")
    schema["$defs"]["component"]["properties"]["method"]["enum"].append("guessed")
    found = mismatches(Record, schema, schema, "record")
    assert [line.split(":")[0] for line in found] == [
        "record.components.cpu.method", "record.components.gpu.method", "record.components.ram.method",
        "record.intensity.year", "record.measured_by",
    ]
    assert "record.intensity.year: the type says ['integer', 'null'], the schema ['string']" in found
    assert "\"enum:'guessed'\"" in found[0].split("the schema")[1]


# -- the shared helpers -----------------------------------------------------------------------------
def _task(task_id, map_index, try_number, run_id="r"):
    return {"task": {"dag_id": "d", "run_id": run_id, "task_id": task_id, "map_index": map_index, "try_number": try_number}}


def test_sort_key_orders_by_task_map_index_try_then_run():
    records = [_task("train", 1, 1), _task("train", 0, 2, "b"), _task("eval", -1, 1), _task("train", 0, 2, "a"), _task("train", -1, 3)]
    ordered = [(r["task"]["task_id"], r["task"]["map_index"], r["task"]["try_number"], r["task"]["run_id"]) for r in sorted(records, key=sort_key)]
    assert ordered == [("eval", -1, 1, "r"), ("train", -1, 3, "r"), ("train", 0, 2, "a"), ("train", 0, 2, "b"), ("train", 1, 1, "r")]


def test_task_label():
    assert task_label({"task_id": "train", "map_index": -1}) == "train"
    assert task_label({"task_id": "train", "map_index": 0}) == "train[0]"
    assert task_label(_task("train", 12, 1)["task"]) == "train[12]"


def test_the_hardware_rule():
    assert device_counts(["A", "B", "B"], [("EPYC", 2), ("Xeon", 1), ("EPYC", 2)]) == {"B": 2, "A": 1, "EPYC": 4, "Xeon": 1}
    assert format_hardware(device_counts(["H200", "H200"], [("AMD EPYC 7763", 1)])) == "2 x H200, 1 x AMD EPYC 7763"
    assert format_hardware(device_counts([])) == ""


# -- versions ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def current_record():
    from airflow_carbon import EnergyMeter

    with EnergyMeter(location="FR", cuda_visible_devices="") as meter:
        pass
    return meter.record


@pytest.fixture()
def v1_record():
    """A record airflow-carbon 0.1.0 wrote (schema version 1), as it sits in users' XComs and files."""
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "data" / "records" / "v1-airflow-carbon-0.1.0.json").read_text())


@pytest.mark.parametrize("version", [3, 4, 99])
def test_a_newer_record_is_refused_with_a_clear_message(current_record, version):
    newer = {**current_record, "schema_version": version}
    message = f"invalid record field schema_version: {version} is newer than this airflow-carbon reads (2); upgrade airflow-carbon"
    for read in (validate_record, load_record):
        with pytest.raises(RecordError) as err:
            read(newer)
        assert str(err.value) == message


@pytest.mark.parametrize("version", [0, "1", True, None])
def test_a_version_that_is_no_version_is_named(current_record, version):
    with pytest.raises(RecordError, match="field schema_version:"):
        validate_record({**current_record, "schema_version": version})


def test_a_current_record_is_read_as_is(current_record):
    assert current_record["schema_version"] == rec.SCHEMA_VERSION == 2
    assert upgrade(current_record) is current_record
    assert load_record(current_record) is current_record


def test_a_version_1_record_still_reads_in_the_newest_shape(v1_record):
    loaded = load_record(v1_record)
    assert loaded["schema_version"] == 2
    assert {k: v for k, v in loaded.items() if k != "schema_version"} == {k: v for k, v in v1_record.items() if k != "schema_version"}
    assert v1_record["schema_version"] == 1  # the input is left alone
    assert "segments" not in loaded["intensity"]  # a v1 record says nothing about live intensity: unknown, not empty


def test_a_version_1_record_is_checked_against_its_own_schema(v1_record):
    live = copy.deepcopy(v1_record)
    live["intensity"]["method"] = "live"  # a v2 value in a v1 record: refused, naming the field
    with pytest.raises(RecordError, match=r"field intensity\.method:"):
        load_record(live)


def test_load_record_upgrades_an_older_record_step_by_step(v1_record, monkeypatch):
    """As it will once a version 3 exists: each step of UPGRADES runs in turn."""
    monkeypatch.setattr(rec, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(rec.SCHEMA_RESOURCES, 3, rec.SCHEMA_RESOURCE)
    monkeypatch.setitem(rec.UPGRADES, 2, lambda r: {**r, "schema_version": 3, "renamed": r["hardware_used"]})
    loaded = load_record(v1_record)
    assert loaded["schema_version"] == 3 and loaded["renamed"] == v1_record["hardware_used"]
    assert v1_record["schema_version"] == 1


def test_the_meter_and_the_card_write_one_records_hardware_alike(fake_gpu):
    from airflow_carbon import EnergyMeter
    from airflow_carbon.core.aggregate import hardware_used as card_hardware
    from airflow_carbon.core.meter import hardware_used as meter_hardware

    fake_gpu("count=2; power=const:300")
    with EnergyMeter(location="FR") as meter:
        pass
    record = meter.record
    assert record["hardware_used"] == card_hardware([record]) == meter_hardware(record["gpus"])
    assert record["hardware_used"].startswith("2 x NVIDIA H200, ")
    # one rule for both: most used first, the CPU last
    cpu = record["components"]["cpu"]
    mixed = [{"name": "A"}, {"name": "B"}, {"name": "B"}]
    assert meter_hardware(mixed) == f"2 x B, 1 x A, {cpu['sockets']} x {cpu['model']}"
