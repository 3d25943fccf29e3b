"""GPU energy through the real pynvml against the simulated GPU: accuracy, CUDA_VISIBLE_DEVICES, MIG, faults."""

from __future__ import annotations

import time

import pytest

from airflow_carbon import EnergyMeter, MeterWarning, validate_record

pytestmark = pytest.mark.unit


def _window(meter: EnergyMeter, seconds: float, work=None):
    """Measure ``seconds`` of (simulated) GPU work; returns the record and the inner/outer time brackets."""
    a = time.monotonic()
    meter.start()
    b = time.monotonic()
    if work:
        work()
    time.sleep(seconds)
    c = time.monotonic()
    record = meter.stop()
    d = time.monotonic()
    return validate_record(record), (b, c), (a, d)


def test_counter_energy_is_exact_to_the_millijoule(fake_gpu):
    gpu = fake_gpu("count=1; power=const:300")
    record, inner, outer = _window(EnergyMeter(location="FR"), 1.0)
    entry = record["gpus"][0]
    assert entry["method"] == "counter" and record["components"]["gpu"]["method"] == "counter"
    assert gpu.true_energy_j(0, *inner) - 0.001 <= entry["energy_j"] <= gpu.true_energy_j(0, *outer) + 0.001
    assert entry["mean_power_w"] == pytest.approx(300, rel=1e-3) and entry["peak_power_w"] == 300
    assert record["hardware_used"].startswith("1 x NVIDIA H200, ")


def test_sampled_energy_tracks_a_bursty_load_without_aliasing(fake_gpu):
    # 100/400 W on/off every 0.15 s: a fixed 100 ms grid would read it as 300 W (+20 %).
    gpu = fake_gpu("count=1; counter=0; cc=6.0; name=Tesla P100-PCIE-16GB; power=square:100:400:0.3")
    record, inner, _ = _window(EnergyMeter(location="FR"), 2.0)
    entry = record["gpus"][0]
    truth = gpu.true_energy_j(0, *inner)
    assert entry["method"] == "sampled" and entry["name"] == "Tesla P100-PCIE-16GB"
    # Random-phase sampling is unbiased; over 2 s its spread is ~1 % (make bench measures 10 s windows).
    assert entry["energy_j"] == pytest.approx(truth, rel=0.06)
    assert entry["peak_power_w"] == 400


def test_sampled_mode_can_be_forced_on_a_gpu_with_a_counter(fake_gpu):
    fake_gpu("count=1; power=const:250")
    record, _, _ = _window(EnergyMeter(gpu_energy="sampled", g_per_kwh=0), 0.5)
    assert record["gpus"][0]["method"] == "sampled"
    # constant power: the truth over the meter's own window, whatever the machine's load did to its edges
    assert record["gpus"][0]["energy_j"] == pytest.approx(250.0 * record["duration_s"], rel=0.01)


def test_gpu_utilisation_is_sampled_once_a_second_and_averaged(fake_gpu):
    fake_gpu("count=2; power=const:350; gpu1.power=const:70")  # NVML reports 50 % and 10 % of the 700 W limit
    record, _, _ = _window(EnergyMeter(location="FR"), 2.2)
    a, b = record["gpus"]
    assert (a["mean_utilization_percent"], b["mean_utilization_percent"]) == (50.0, 10.0)
    # at the host rate (t = 1 s, 2 s) and once at the end, not at the power rate (every 0.1 s)
    assert 2 <= a["utilization_samples"] == b["utilization_samples"] <= 4 < a["samples"]


def test_emissions_follow_energy_pue_and_intensity(fake_gpu):
    fake_gpu("count=2; power=const:400")
    record, _, _ = _window(EnergyMeter(g_per_kwh=500, pue=1.5), 0.3)
    assert record["components"]["gpu"]["energy_kwh"] == pytest.approx(sum(g["energy_j"] for g in record["gpus"]) / 3.6e6)
    assert record["emissions_g"] == pytest.approx(record["energy_kwh"] * 1.5 * 500)
    assert record["intensity"]["method"] == "explicit"
    assert record["hardware_used"].startswith("2 x NVIDIA H200")


@pytest.mark.parametrize(
    "visible, order, expected",
    [
        ("2,0", None, [(2, 0), (0, 1)]),  # (NVML index, the task's CUDA index)
        ("GPU-fa4e0003", None, [(3, 0)]),  # a unique UUID prefix, as CUDA accepts
        ("", None, []),
        ("1,7,2", None, [(1, 0)]),  # CUDA ignores an invalid entry and all after it
    ],
)
def test_only_the_visible_gpus_are_measured(fake_gpu, visible, order, expected):
    fake_gpu("count=4; power=const:100")
    record, _, _ = _window(EnergyMeter(cuda_visible_devices=visible, cuda_device_order=order), 0.1)
    assert [(g["index"], g["cuda_index"]) for g in record["gpus"]] == expected
    if not expected:
        assert record["components"]["gpu"] == {"energy_kwh": 0.0, "method": "none"}
    if visible == "1,7,2":
        assert any("'7'" in w and "out of range" in w for w in record["warnings"])


def test_cuda_device_order_fastest_first_versus_pci_bus_id(fake_gpu):
    fake_gpu("count=2; gpu0.name=Tesla V100-SXM2-16GB; gpu0.cc=7.0; gpu1.name=NVIDIA H100 80GB HBM3; gpu1.cc=9.0")
    fastest, _, _ = _window(EnergyMeter(cuda_visible_devices="0"), 0.05)
    pci, _, _ = _window(EnergyMeter(cuda_visible_devices="0", cuda_device_order="PCI_BUS_ID"), 0.05)
    assert fastest["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in w for w in fastest["warnings"])
    assert pci["gpus"][0]["name"] == "Tesla V100-SXM2-16GB"


def test_a_mig_slice_gets_its_share_of_the_parent_gpu_as_an_allocation_and_says_so(fake_gpu):
    fake_gpu("count=2; gpu1.mig=3; gpu1.mig_slices=1,2,4; power=const:200")
    slice_uuid = "MIG-3f1c0001-0000-4000-8000-000000000002"  # GPU 1's third slice: 4 of the 7 slices
    record, _, _ = _window(EnergyMeter(cuda_visible_devices=slice_uuid), 0.2)
    (entry,) = record["gpus"]
    assert entry["index"] == 1 and entry["mig_devices"] == [slice_uuid] and entry["method"] == "counter"
    assert entry["attribution"] == "mig-allocation" and entry["share"] == pytest.approx(4 / 7)
    assert entry["device_energy_j"] == pytest.approx(200 * record["duration_s"], rel=0.02)
    assert entry["energy_j"] == pytest.approx(entry["device_energy_j"] * 4 / 7)
    assert any("MIG mode" in w and "4 of the 7 compute slices" in w and "an allocation, not a measurement" in w
               for w in record["warnings"])
    two = "MIG-3f1c0001-0000-4000-8000-000000000000,MIG-3f1c0001-0000-4000-8000-000000000001"  # 1 + 2 slices
    record, _, _ = _window(EnergyMeter(cuda_visible_devices=two), 0.2)
    assert record["gpus"][0]["share"] == pytest.approx(3 / 7)


def test_nvml_unavailable_leaves_gpu_energy_missing_and_the_task_untouched(fake_gpu):
    fake_gpu("unavailable=1")
    meter = EnergyMeter(g_per_kwh=100)
    with pytest.warns(MeterWarning, match="GPU energy is missing"), meter:
        result = sum(range(1000))
    assert result == 499500
    record = validate_record(meter.record)
    assert record["components"]["gpu"] == {"energy_kwh": None, "method": "missing"}
    assert record["components"]["cpu"]["energy_kwh"] is not None
    assert any("leaves out gpu" in w for w in record["warnings"])


def test_gpu_lost_mid_window_keeps_what_was_measured(fake_gpu):
    lost_at = time.monotonic() + 0.5
    gpu = fake_gpu(f"count=2; power=const:300; gpu1.lost_at={lost_at}")
    with pytest.warns(MeterWarning, match="lost mid-window"):
        record, inner, _ = _window(EnergyMeter(g_per_kwh=100), 1.2)
    healthy, lost = record["gpus"]
    assert healthy["complete"] and healthy["method"] == "counter"
    assert not lost["complete"] and lost["method"] == "sampled"
    # Power is sampled every 100 ms (stratified) on a GPU with a counter: the last sample before the
    # loss is at most two intervals before it.
    assert gpu.true_energy_j(1, inner[0], lost_at - 0.2) <= lost["energy_j"] <= gpu.true_energy_j(1, inner[0] - 0.01, lost_at)


def test_counter_going_backwards_falls_back_to_sampled_power(fake_gpu):
    reset_at = time.monotonic() + 0.3
    gpu = fake_gpu(f"count=1; power=const:200; reset_at={reset_at}")
    with pytest.warns(MeterWarning, match="went backwards"):
        record, inner, _ = _window(EnergyMeter(g_per_kwh=100), 0.8)
    entry = record["gpus"][0]
    assert entry["method"] == "sampled"
    assert entry["energy_j"] == pytest.approx(gpu.true_energy_j(0, *inner), rel=0.02)


def test_the_measured_codes_exception_propagates_and_the_record_is_kept(fake_gpu):
    fake_gpu("count=1; power=const:100")
    meter = EnergyMeter(g_per_kwh=100)
    with pytest.raises(ZeroDivisionError), meter:
        raise ZeroDivisionError("the measured code fails")
    assert validate_record(meter.record)["gpus"][0]["method"] == "counter"


def test_bad_configuration_fails_before_measuring():
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES='0,abc'"):
        EnergyMeter(cuda_visible_devices="0,abc")
    with pytest.raises(ValueError, match="pue=-1"):
        EnergyMeter(pue=-1)
    with pytest.raises(ValueError, match="sampling_interval_s=0"):
        EnergyMeter(sampling_interval_s=0)
    with pytest.raises(ValueError, match="gpu_energy='guess'"):
        EnergyMeter(gpu_energy="guess")


def test_checkpoints_hand_over_the_running_record(fake_gpu):
    fake_gpu("count=1; power=const:100")
    checkpoints = []
    meter = EnergyMeter(g_per_kwh=100, on_checkpoint=checkpoints.append, checkpoint_interval_s=0.3)
    record, _, _ = _window(meter, 1.0)
    assert len(checkpoints) >= 2
    energies = [validate_record(c)["gpus"][0]["energy_j"] for c in checkpoints]
    assert energies == sorted(energies) and energies[-1] < record["gpus"][0]["energy_j"]
    assert checkpoints[0]["gpus"][0]["energy_j"] == pytest.approx(100 * checkpoints[0]["duration_s"], rel=0.02)
    assert "the window was still open" in checkpoints[0]["warnings"][-1]


def test_nvml_shut_down_by_another_library_is_initialised_again(fake_gpu):
    import pynvml

    fake_gpu("count=1; power=const:100")
    _window(EnergyMeter(g_per_kwh=1), 0.05)  # NVML is initialised now
    pynvml.nvmlShutdown()  # e.g. another tracker in the same process
    record, _, _ = _window(EnergyMeter(g_per_kwh=1), 0.05)
    assert record["gpus"][0]["method"] == "counter"
