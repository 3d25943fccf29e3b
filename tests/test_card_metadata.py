import pytest

from airflow_carbon import EnergyMeter, __version__
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
    assert co2["source"].startswith(f"airflow-carbon {__version__} (DAG d): GPU: NVML energy counters; CPU and RAM estimated")
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


def test_the_source_names_the_live_grid_source_and_its_share(tmp_path):
    import time

    from airflow_carbon.core.intensity import resolve_intensity
    from airflow_carbon.core.intensity_cache import IntensityCache
    from airflow_carbon.core.live import LiveIntensity, LiveSpec
    from carbon_testing.gridsim import ElectricityMapsSim

    now = time.time()
    hour = now - now % 3600
    with ElectricityMapsSim({"FR": {hour - 3600 * k: 40.0 for k in range(24)}}, token="t", now_s=now) as em:
        live = LiveIntensity(LiveSpec("electricitymaps", em.url, token="t"), "FR", fallback=resolve_intensity("FR"),
                             cache=IntensityCache(tmp_path))
        with EnergyMeter(location="FR", cuda_visible_devices="", live=live) as meter:
            pass
    bundled = _record(location="FR")
    co2 = co2_eq_emissions([meter.record, bundled], "fine-tuning", origin="DAG d")
    assert co2["source"].endswith("; grid intensity: live from Electricity Maps (zone FR) for 1 of 2 tries, bundled table otherwise")
    assert co2_eq_emissions([meter.record], "fine-tuning", origin="DAG d")["source"].endswith("live from Electricity Maps (zone FR)")
    assert "grid intensity" not in co2_eq_emissions([bundled], "fine-tuning", origin="DAG d")["source"]
