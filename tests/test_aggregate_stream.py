"""Aggregation streamed one record at a time gives today's figures, and the fast record check never accepts what
the schema refuses: a hand-edited record is still named, file, line and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from airflow_carbon import EnergyMeter, __version__, edit_card_metadata
from airflow_carbon.card.metadata import co2_eq_emissions, grams
from airflow_carbon.core.aggregate import Aggregate, totals
from airflow_carbon.core.record import COMPONENTS, RecordError, _fast_types, _validator, record_schema, validate_record
from airflow_carbon.core.record_files import RecordFileError, iter_record_files

pytestmark = pytest.mark.unit

CARD = Path(__file__).parent / "data" / "model_cards" / "leliuga__cohere-configurations__typhoon-7B.md"


def _reference(records: list) -> dict:
    """co2_eq_emissions and totals as 0.3.0 computed them: lists, sum(), sets (the straightforward way)."""
    gpus, cpus = {}, {}
    for r in records:
        for g in r["gpus"]:
            gpus[(r["host"], g["uuid"])] = g["name"]
        if "model" in r["components"]["cpu"]:
            cpus[r["host"]] = (r["components"]["cpu"]["model"], r["components"]["cpu"].get("sockets", 1))
    from collections import Counter

    cpu_counts: Counter = Counter()
    for model, sockets in cpus.values():
        cpu_counts[model] += sockets
    hardware = ", ".join(f"{n} x {name}" for name, n in [*Counter(gpus.values()).most_common(), *cpu_counts.most_common()])
    gpu_methods = sorted({g["method"] for r in records for g in r["gpus"]} - {"missing"})
    names = {"counter": "NVML energy counters", "sampled": "NVML power sampled and integrated"}
    cpu = {r["components"]["cpu"]["method"] for r in records}
    ram = {r["components"]["ram"]["method"] for r in records}
    methods = ["GPU: " + ", ".join(names[m] for m in gpu_methods)] if gpu_methods else []
    methods += ["CPU and RAM estimated"] if cpu == ram == {"estimated"} else ["CPU: " + ", ".join(sorted(cpu)), "RAM: " + ", ".join(sorted(ram))]
    return {
        "co2": {
            "emissions": grams(sum(r["emissions_g"] for r in records)),
            "source": f"airflow-carbon {__version__} (DAG sweep): " + "; ".join(methods),
            "training_type": "fine-tuning",
            "geographical_location": "; ".join(sorted({r["intensity"]["name"] for r in records})),
            "hardware_used": hardware,
        },
        "totals": {
            "emissions_g": sum(r["emissions_g"] for r in records),
            "energy_kwh": sum(r["energy_kwh"] for r in records),
            "energy_kwh_by_component": {c: sum(r["components"][c]["energy_kwh"] or 0.0 for r in records) for c in COMPONENTS},
            "tries": len(records),
            "failed_tries": sum(1 for r in records if r.get("status") not in (None, "success")),
        },
    }


@pytest.fixture(scope="module")
def records(fake_gpu_module):
    """A sweep's records: 8-GPU hosts in two regions, mapped tasks with failed tries, and 1-GPU evaluation tries."""
    out = []
    for gpus, location, tasks in ((8, "gcp:us-central1", 6), (1, "CA-QC", 3)):
        fake_gpu_module(f"count={gpus}; name=NVIDIA A100-SXM4-80GB; power=const:350")
        with EnergyMeter(location=location, pue=1.1) as meter:
            sum(i * i for i in range(20_000))
        for m in range(tasks):
            for t in range(1, 1 + m % 3 + 1):
                r = copy.deepcopy(meter.record)
                r["host"] = f"gpu-{m % 4}-{gpus}"
                r["emissions_g"] *= 1 + m / 7 + t / 11  # different figures, so the order of the sums shows
                r["task"] = {"dag_id": "sweep", "run_id": "r", "task_id": f"train{gpus}", "map_index": m, "try_number": t}
                r["status"] = "success" if t == m % 3 + 1 else "failed"
                out.append(validate_record(r))
    return out


@pytest.fixture(scope="module")
def fake_gpu_module():
    from carbon_testing import fake_nvml

    active = []
    yield lambda config: active.append(fake_nvml.activate(config))
    for gpu in reversed(active):
        gpu.deactivate()


def test_streamed_records_give_the_same_card_and_totals_as_the_reference(records, tmp_path):
    expected = _reference(records)
    aggregate = Aggregate()
    for r in records:  # the publisher's way: one record at a time
        aggregate.add(r)
    assert co2_eq_emissions(aggregate, "fine-tuning", origin="DAG sweep") == expected["co2"]
    assert aggregate.totals() == expected["totals"] == totals(records)
    assert co2_eq_emissions(iter(records), "fine-tuning", origin="DAG sweep") == expected["co2"]  # any iterable
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    from_file = Aggregate.of(iter_record_files([str(path)], views=True))  # the CLI's way: read-only views
    assert co2_eq_emissions(from_file, "fine-tuning", origin="DAG sweep") == expected["co2"]
    assert from_file.totals() == expected["totals"]
    card = edit_card_metadata(CARD.read_text(encoding="utf-8"), co2_eq_emissions(from_file, "fine-tuning", origin="DAG sweep"))
    (tmp_path / "README.md").write_text(card, encoding="utf-8")
    from huggingface_hub import ModelCard

    assert ModelCard.load(tmp_path / "README.md").data.to_dict()["co2_eq_emissions"] == expected["co2"]


def _values(records: list, shape: str) -> list:
    """The records as tracked task instances pushed them under carbon_records, one value per task instance."""
    from airflow_carbon.core.aggregate import task_summary
    from airflow_carbon.xcom import xcom_value

    instances: dict = {}
    for r in records:
        instances.setdefault((r["task"]["task_id"], r["task"]["map_index"]), []).append(r)
    if shape == "0.5.0":
        return [xcom_value(tries, task_summary(tries)) for tries in instances.values()]
    if shape == "0.4.0":
        return [{"summary": task_summary(tries), "records": tries} for tries in instances.values()]
    return list(instances.values())  # 0.3.x: the list alone


@pytest.mark.parametrize("shape", ["0.5.0", "0.4.0", "0.3.x"])
def test_the_xcom_values_of_every_release_give_the_same_card(records, shape):
    """What the publisher reads from each task instance's XCom value: 0.5.0's JSON text (decoded into read-only
    views in one pass), 0.4.0's and 0.3.x's lists (dicts): the same card and totals as the reference."""
    from airflow_carbon.xcom import checked_records, records_in

    expected = _reference(records)
    values = _values(records, shape)
    aggregate = Aggregate.of(r for value in values for r in checked_records(value))
    assert co2_eq_emissions(aggregate, "fine-tuning", origin="DAG sweep") == expected["co2"]
    assert aggregate.totals() == expected["totals"]
    assert [r for value in values for r in records_in(value)] == records  # the plain dicts, as pushed


def test_a_hand_edited_record_in_an_xcom_value_is_named_by_task_try_and_field(records):
    from airflow_carbon.xcom import RECORDS_TEXT, checked_records

    value = _values(records, "0.5.0")[2]
    edited = json.loads(value[RECORDS_TEXT])
    edited[1]["gpus"][2]["energy_j"] = -5
    task = edited[1]["task"]
    with pytest.raises(RecordError, match=rf"task '{task['task_id']}' \(map index {task['map_index']}, try 2, run 'r'\): "
                                          r"invalid record field gpus\[2\]\.energy_j: -5 is less than the minimum of 0"):
        checked_records({**value, RECORDS_TEXT: json.dumps(edited)})
    with pytest.raises(RecordError, match="records_json is not the JSON text of a list of records"):
        checked_records({**value, RECORDS_TEXT: value[RECORDS_TEXT][:-10]})  # cut short: not JSON


def test_a_hand_edited_line_is_named_by_file_line_and_field(records, tmp_path):
    bad = copy.deepcopy(records[3])
    bad["gpus"][2]["energy_j"] = -5
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [records[0], records[1], bad, records[4]]) + "\n")
    for views in (True, False):
        with pytest.raises(RecordFileError, match=r"records\.jsonl:3: invalid record field gpus\[2\]\.energy_j: -5 is less than the minimum of 0"):
            list(iter_record_files([str(path)], views=views))


def test_a_record_only_the_schema_accepts_is_still_read(records, tmp_path):
    odd = copy.deepcopy(records[0])
    odd["gpus"][0]["index"] = 0.0  # an integer to JSON Schema, not to the fast check
    assert validate_record(odd) is odd
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(odd) + "\n" + json.dumps(records[1]) + "\n")
    assert Aggregate.of(iter_record_files([str(path)], views=True)).totals() == totals([odd, records[1]])


def test_the_fast_check_is_built_for_every_version_and_refuses_what_it_cannot_translate(monkeypatch):
    assert _fast_types(1) is not None and _fast_types(2) is not None
    schema = copy.deepcopy(record_schema(2))
    schema["properties"]["host"]["minLength"] = 1  # a keyword the compiler does not know: no fast check at all
    _fast_types.cache_clear()
    monkeypatch.setattr("airflow_carbon.core.record.record_schema", lambda version=2: schema)
    try:
        assert _fast_types(2) is None
    finally:
        _fast_types.cache_clear()


def _mutations(record):
    """Every field of ``record`` (nested) set to each of a few wrong values, removed, or joined by an unknown key."""
    def walk(node, path):
        if isinstance(node, dict):
            yield path, None
            for key, value in node.items():
                yield from walk(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node[:2]):
                yield from walk(value, (*path, i))
        yield path, node

    for path, _ in walk(record, ()):
        if not path:
            continue
        for value in (-1, 1.5, 101, "x", "", None, True, [], {}, "2024-01-01T00:00:00Z", "counter", 2, "_drop"):
            bad = copy.deepcopy(record)
            target = bad
            for key in path[:-1]:
                target = target[key]
            if value == "_drop":
                if isinstance(target, dict):
                    del target[path[-1]]
            else:
                target[path[-1]] = value
            yield bad
        bad = copy.deepcopy(record)
        target = bad
        for key in path:
            target = target[key]
        if isinstance(target, dict):
            target["unknown_field"] = 1
            yield bad


def test_the_fast_check_never_accepts_what_the_schema_refuses(records):
    import msgspec

    record = copy.deepcopy(records[0])
    record["shift"] = {"requested_at": "2024-01-01T00:00:00Z", "planned_start": "2024-01-01T00:00:00Z",
                       "started_at": "2024-01-01T00:00:00Z", "waited_s": 1.0, "expected_duration_s": 2.0,
                       "start_within_s": 3.0, "reason": "r"}
    record["budget"] = {"co2_g": None, "energy_kwh": 1.0, "spent_g": 0.0, "spent_kwh": 0.0, "exceeded": False, "action": "none"}
    record["intensity"]["segments"] = [{"start": "a", "end": "b", "energy_kwh": 0.1, "g_per_kwh": 5.0, "source": "s",
                                        "estimated": False, "energy_estimated": False}]
    checked = 0
    for bad in _mutations(record):
        schema_errors = list(_validator(2).iter_errors(bad))
        try:
            msgspec.json.decode(json.dumps(bad), type=_fast_types(2))
        except msgspec.DecodeError:
            continue
        assert not schema_errors, (bad, schema_errors[0].message)
        checked += 1
    assert checked > 50  # the accepted mutations (unknown keys in open objects, right-typed values) were compared
    with pytest.raises(RecordError):
        validate_record({**record, "pue": 0.5})
