"""The sampling thread's reads: NVML's instant power field where a GPU gives it, no faster than the power sensor
updates, and no memory that grows with the samples. (Its CPU cost is measured by the bench, not here.)"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from airflow_carbon import EnergyMeter, MeterWarning, validate_record
from airflow_carbon.core import nvml
from airflow_carbon.core.devices import parse_visible_devices
from airflow_carbon.core.gpu import GpuWindow

pytestmark = pytest.mark.unit

BURSTY = "power=square:100:400:0.3"  # 100/400 W, on/off every 0.15 s
H200 = f"count=1; power_avg_s=1; power_period_s=0.02; {BURSTY}"  # nvmlDeviceGetPowerUsage: a 1 s average
P100 = f"count=1; counter=0; cc=6.0; name=Tesla P100-PCIE-16GB; instant_power=0; power_period_s=0.02; {BURSTY}"


def _window(meter: EnergyMeter, seconds: float):
    meter.start()
    b = time.monotonic()
    time.sleep(seconds)
    c = time.monotonic()
    return validate_record(meter.stop()), (b, c)


def _gpus() -> list[nvml.Gpu]:
    gpus, _ = nvml.visible_gpus(parse_visible_devices(None, None))
    return gpus


def test_the_simulated_gpu_gives_an_instant_field_beside_a_1s_average(fake_gpu):
    fake_gpu(f"count=2; power_avg_s=1; {BURSTY}; gpu1.instant_power=0")
    import pynvml

    pynvml.nvmlInit()
    try:
        a, b = (pynvml.nvmlDeviceGetHandleByIndex(i) for i in (0, 1))
        field = pynvml.nvmlDeviceGetFieldValues(a, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
        assert field.nvmlReturn == 0 and field.value.uiVal in (100_000, 400_000)  # mW: the load now
        # a 1 s mean of the 0.3 s square wave: 3.3 periods, 250 W give or take a part of one
        assert 200_000 <= pynvml.nvmlDeviceGetPowerUsage(a) <= 300_000
        assert pynvml.nvmlDeviceGetFieldValues(b, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    finally:
        pynvml.nvmlShutdown()


def test_the_simulated_sensor_holds_its_reading_for_its_update_period(fake_gpu):
    fake_gpu(f"count=1; power_period_s=1000; {BURSTY}")  # one update in 1000 s: the mean of the last 1000 s
    import pynvml

    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        readings = {pynvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0].value.uiVal for _ in range(3)}
        readings.add(pynvml.nvmlDeviceGetPowerUsage(h))
        assert len(readings) == 1 and abs(readings.pop() - 250_000) <= 100
    finally:
        pynvml.nvmlShutdown()


def test_sampled_power_is_the_instant_field_where_the_gpu_gives_it(fake_gpu):
    gpu = fake_gpu(H200)
    record, inner = _window(EnergyMeter(location="FR", gpu_energy="sampled"), 2.0)
    entry = record["gpus"][0]
    assert entry["method"] == "sampled"
    assert entry["peak_power_w"] == 400  # the 1 s average never reads above about 300 W
    assert entry["energy_j"] == pytest.approx(gpu.true_energy_j(0, *inner), rel=0.06)
    assert not [w for w in record["warnings"] if "1 s average" in w]


def test_peak_power_comes_from_the_instant_field_on_the_counter_path_too(fake_gpu):
    fake_gpu(H200)
    record, _ = _window(EnergyMeter(location="FR"), 1.5)
    assert record["gpus"][0]["method"] == "counter" and record["gpus"][0]["peak_power_w"] == 400


def test_without_the_instant_field_a_1s_average_is_said_so(fake_gpu):
    fake_gpu(H200 + "; instant_power=0")
    with pytest.warns(MeterWarning, match="1 s average"):
        record, _ = _window(EnergyMeter(location="FR"), 1.0)
    entry = record["gpus"][0]
    assert entry["method"] == "counter" and entry["peak_power_w"] < 320
    assert [w for w in record["warnings"] if "GPU 0" in w and "1 s average" in w and "peak_power_w" in w]


def test_sampling_is_faster_while_power_moves_but_no_faster_than_the_sensor_updates(fake_gpu):
    gpu = fake_gpu(P100)
    record, inner = _window(EnergyMeter(location="FR"), 2.0)
    entry = record["gpus"][0]
    assert entry["method"] == "sampled" and entry["energy_j"] == pytest.approx(gpu.true_energy_j(0, *inner), rel=0.06)
    # the sensor updates every 20 ms: at most one sample per 20 ms slot, and the start and end samples;
    # more than the 100 ms base rate gives, since the load moves
    assert record["duration_s"] / 0.1 < entry["samples"] <= record["duration_s"] / 0.02 + 3


def test_a_long_window_keeps_no_sample_list(fake_gpu):
    fake_gpu("count=2; counter=0; power=const:200")
    window = GpuWindow(_gpus(), use_counter=False)
    window.start(0.0)
    window.sample(0.01)  # the first pass builds what every later one reuses
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(2, 20_001):
            window.sample(k * 0.01)  # 200 s at 100 samples a second, on simulated time
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries, warnings = window.stop(200.01, 200.01)
    assert grown < 20_000  # bytes; a list of (t, W) samples would hold over 2 MB here
    assert [e["samples"] for e in entries] == [20_002, 20_002] and warnings == []
    assert entries[0]["energy_j"] == pytest.approx(200.0 * 200.01) and entries[0]["peak_power_w"] == 200


def test_power_is_read_through_pynvml_public_calls_where_its_internals_differ(fake_gpu, monkeypatch):
    fake_gpu("count=2; power_avg_s=1; power=const:321; gpu1.instant_power=0; gpu1.power=const:123")
    gpus = _gpus()
    monkeypatch.setattr(nvml, "_C_LOOKUP", "_a_lookup_this_pynvml_lacks")
    sensors = [nvml.PowerSensor(g) for g in gpus]
    assert [(s.source, s.read_mw()) for s in sensors] == [("instant", 321_000), ("average", 123_000)]


def test_a_gpu_lost_mid_pass_leaves_the_others_sampled(fake_gpu):
    lost_at = time.monotonic() + 0.3
    gpu = fake_gpu(f"count=2; counter=0; power=const:200; gpu0.lost_at={lost_at}")  # the first GPU of each pass
    with pytest.warns(MeterWarning, match="GPU 0 .* lost mid-window"):
        record, inner = _window(EnergyMeter(location="FR"), 0.8)
    lost, healthy = record["gpus"]
    assert not lost["complete"] and lost["energy_j"] < 200 * 0.3 + 1
    assert healthy["complete"] and healthy["energy_j"] == pytest.approx(gpu.true_energy_j(1, *inner), rel=0.05)
