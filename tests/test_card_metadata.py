import pytest

from airflow_carbon import EnergyMeter
from airflow_carbon.card.metadata import co2_eq_emissions, combine, validate_training_type
from airflow_carbon.core.aggregate import hardware_used, totals

pytestmark = pytest.mark.unit


def _record(fake_gpu_config=None, location="CA-QC", task_id="train", try_number=1, status="success", host=None):
    with EnergyMeter(location=location) as meter:
        pass
    record = meter.record
    record["task"] = {"dag_id": "d", "run_id": "r", "task_id": task_id, "map_index": -1, "try_number": try_number}
    record["status"] = status
    if host:
        record["host"] = host
    return record


def test_the_five_fields_from_every_try(fake_gpu):
    fake_gpu("count=2; power=const:300")
    records = [_record(try_number=1, status="failed"), _record(try_number=2), _record(task_id="eval", location="CA-QC")]
    co2 = co2_eq_emissions(records, "fine-tuning", origin="DAG d")
    assert list(co2) == ["emissions", "source", "training_type", "geographical_location", "hardware_used"]
    assert co2["emissions"] == pytest.approx(sum(r["emissions_g"] for r in records), rel=1e-5)
    assert co2["source"].startswith("airflow-carbon 0.1.0 (DAG d): GPU: NVML energy counters; CPU and RAM estimated")
    assert co2["geographical_location"] == "Quebec, Canada"
    assert co2["hardware_used"].startswith("2 x NVIDIA H200, 1 x ")  # same host, same GPUs: counted once
    assert totals(records)["failed_tries"] == 1


def test_hardware_is_counted_per_host(fake_gpu):
    fake_gpu("count=1")
    records = [_record(host="worker-1"), _record(host="worker-2")]
    assert hardware_used(records).startswith("2 x NVIDIA H200, 2 x ")


def test_existing_entries(fake_gpu):
    ours = {"emissions": 10.0, "source": "airflow-carbon 0.1.0 (DAG d): GPU: NVML energy counters"}
    theirs = {"emissions": 5.0, "source": "CodeCarbon"}
    assert combine({"emissions": 99, "source": "airflow-carbon 0.0.9 (DAG d): x"}, ours, "fail", "DAG d") == ours
    assert combine(theirs, ours, "replace", "DAG d") == ours
    added = combine(theirs, ours, "add", "DAG d")
    assert added["emissions"] == 15.0 and "added to an earlier figure of 5 g (CodeCarbon)" in added["source"]
    assert combine(added, ours, "add", "DAG d") == added  # re-running adds the earlier figure once, not twice
    with pytest.raises(ValueError, match=r"from elsewhere \(CodeCarbon: 5\.0 g\).*on_existing='replace'"):
        combine(theirs, ours, "fail", "DAG d")


def test_training_type():
    assert validate_training_type("pre-training") == "pre-training"
    with pytest.warns(UserWarning, match="'distillation' is not one of"):
        validate_training_type("distillation")
    with pytest.raises(ValueError):
        validate_training_type("")
