"""``airflow-carbon gpu-check`` (airflow_carbon/gpu_check.py) against the simulated GPU (carbon_testing.fake_nvml):
the real CLI as a subprocess, with the fake library and its ``nvidia-smi`` wrapper on the child's paths
(``gpu.env``), and its JSON report checked against the simulated truth (constant power: energy = W x time)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_carbon.gpu_check import _counter_j, _integral_j, _interp

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 2
TORCH = importlib.util.find_spec("torch") is not None  # not in this project's environment: the idle path
MIG_CONFIG = "count=2; gpu1.mig=2; gpu1.mig_slices=1,2; power=const:250"

# A stand-in for torch: the API the load uses, CUDA "available", a matmul that takes 2 ms. It checks the torch
# path's wiring (worker, phases, report), not CUDA.
_STUB_TORCH = """
import time
__version__ = "0.0+stub"
class version:
    cuda = "12.4"
class _Cuda:
    def is_available(self): return True
    def get_device_name(self, device=None): return "stub GPU"
    def get_device_capability(self, device=None): return (9, 0)
    def synchronize(self, device=None): pass
cuda = _Cuda()
bfloat16, float16 = "torch.bfloat16", "torch.float16"
def device(kind, index=None): return f"{kind}:{index}"
def randn(*args, **kwargs): return object()
def empty(*args, **kwargs): return object()
def matmul(a, b, out=None): time.sleep(0.002)
"""


def _gpu_check(gpu, tmp_path: Path, seconds: float = SECONDS, **env: str) -> tuple[dict, subprocess.CompletedProcess, float]:
    out = tmp_path / "report" / "gpu-check.json"  # a folder that does not exist yet
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_carbon", "gpu-check", "--out", str(out), "--seconds", str(seconds)],
        env={**os.environ, **gpu.env, **env}, cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    wall = time.monotonic() - t0
    assert out.exists(), proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc, wall


def _near(value: float | None, expected: float, rel: float) -> bool:
    return value is not None and abs(value - expected) <= rel * expected


def _fails(report: dict) -> list[str]:
    return [v for v in report["verdict"] if v.startswith("FAIL")]


def test_the_helpers_integrate_power_and_difference_the_counter():
    ramp = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    assert _interp(ramp, 0.5) == 150.0 and _interp(ramp, 3.0) is None
    assert _integral_j(ramp, 0.0, 2.0) == pytest.approx(350.0)
    assert _integral_j(ramp, 0.5, 1.5) == pytest.approx(0.5 * 175 + 0.5 * 200)
    assert _integral_j(ramp, -1.0, 1.0) is None  # not covered
    counter = [(0.0, 1_000_000.0), (2.0, 1_000_500.0)]
    assert _counter_j(counter, 0.5, 1.5) == pytest.approx(0.25)
    assert _counter_j([(0.0, 5000.0), (1.0, 10.0)], 0.0, 1.0) is None  # went backwards


def test_two_gpus_one_in_mig_mode_everything_agrees_and_every_check_passes(tmp_path, fake_gpu):
    gpu = fake_gpu(MIG_CONFIG)
    report, proc, wall = _gpu_check(gpu, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["passed"] and not _fails(report), report["verdict"]
    assert "passed; report:" in proc.stdout and "GPU 1 NVIDIA H200" in proc.stdout

    machine = report["machine"]
    assert machine["driver_version"] == "560.35.03" and machine["cuda_driver_version"] == "12.6"
    assert machine["torch"]["importable"] is TORCH

    g0, g1 = report["gpus"]
    assert [g0["index"], g1["index"]] == [0, 1]
    assert g0["uuid"] == "GPU-fa4e0000-0000-4000-8000-000000000000" and g0["power_limit_w"] == 700.0
    for g in (g0, g1):
        assert g["supports"]["energy_counter"] is True and g["supports"]["instant_power_field"] is True
        assert (g["supports"]["meter_power_source"], g["supports"]["meter_power_period_s"]) == ("instant", 0.02)
        assert g["supports"]["process_utilization"] == "no samples"
    assert g0["supports"]["mig"]["mode"] == "disabled" and g0["supports"]["mig"]["devices"] == []
    mig = g1["supports"]["mig"]
    assert mig["mode"] == "enabled"
    assert [(d["uuid"], d["gpu_instance_slices"]) for d in mig["devices"]] == [
        ("MIG-3f1c0001-0000-4000-8000-000000000000", 1), ("MIG-3f1c0001-0000-4000-8000-000000000001", 2)]

    load = report["load"]
    if not TORCH:
        assert load["ran"] == "no torch: idle 2 s, then 2 s observed with nvidia-smi"
        assert [p["name"] for p in load["phases"]] == ["idle", "nvidia-smi observed"]
        assert any(v.startswith("note: torch is not importable: the load phase is idle") for v in report["verdict"])
    else:  # torch here has no GPU to use: it says so, and the phases are idle
        assert "torch" in load["ran"]
    assert load["nvidia_smi"]["path"].endswith("nvidia-smi") and load["nvidia_smi"]["failures"] == 0
    for phase in load["phases"]:
        assert phase["duration_s"] == pytest.approx(SECONDS, abs=0.5)
        for g in phase["gpus"]:
            assert _near(g["counter_j"], 250.0 * phase["duration_s"], 0.01), (phase["name"], g)
            assert g["ratios"]["sampled_over_counter"] == pytest.approx(1.0, abs=0.02)
            assert g["ratios"]["instant_over_counter"] == pytest.approx(1.0, abs=0.02)
            if phase["nvidia_smi_polled"]:
                smi = g["nvidia_smi"]
                assert smi["polls"] >= 2 and _near(smi["mean_power_w"], 250.0, 0.05)
                assert g["ratios"]["smi_over_counter"] == pytest.approx(1.0, abs=0.05)
    assert load["phases"][-1]["nvidia_smi_polled"]
    meter = load["energy_meter"]
    assert [g["index"] for g in meter["gpus"]] == [0, 1]
    for g in meter["gpus"]:
        assert g["method"] == "counter" and g["ratio"] == pytest.approx(1.0, abs=0.01)
        assert _near(g["energy_j"], 250.0 * meter["window_s"], 0.01)

    cvd = report["cuda_visible_devices"]
    assert cvd["gpu"]["status"] == "pass" and cvd["gpu"]["cuda_visible_devices"] == g0["uuid"]
    assert [e["uuid"] for e in cvd["gpu"]["record_gpus"]] == [g0["uuid"]]
    assert cvd["mig"]["status"] == "pass" and cvd["mig"]["cuda_visible_devices"] == mig["devices"][0]["uuid"]
    (entry,) = cvd["mig"]["record_gpus"]
    assert entry["uuid"] == g1["uuid"] and entry["attribution"] == "mig-allocation"
    assert entry["share"] == pytest.approx(1 / 3) and cvd["mig"]["expected_share"] == pytest.approx(1 / 3, abs=1e-6)

    shared = report["shared_gpu"]
    assert shared["status"] == "pass" and shared["gpu"] == 0 and shared["device_reference"] == "counter"
    assert shared["overlap_s"] > 0.2 and shared["union_s"] > shared["overlap_s"]
    assert [w["attribution"] for w in shared["windows"]] == ["equal-split", "equal-split"]
    assert all(w["concurrent_windows"] == 2 and 0.5 < w["share"] < 1.0 for w in shared["windows"])
    assert shared["sum_over_device"] == pytest.approx(1.0, abs=0.02)
    assert _near(shared["device_j"], 250.0 * shared["union_s"], 0.02)

    assert report["duration_s"] < 60 and wall < 120  # the budget is 5 minutes; this is a 2 s load


def test_without_an_energy_counter_sampled_power_is_compared_with_nvidia_smi(tmp_path, fake_gpu):
    gpu = fake_gpu("count=1; counter=0; instant_power=0; power=const:200")  # pre-Volta: no counter, no instant field
    report, proc, _ = _gpu_check(gpu, tmp_path)
    assert proc.returncode == 0 and report["passed"], report["verdict"]
    (g,) = report["gpus"]
    assert g["supports"]["energy_counter"] is False and g["supports"]["instant_power_field"] is False
    assert g["supports"]["meter_power_source"] == "average"  # an H200 (the default model): NVML's power is a 1 s average
    assert any("has no energy counter" in v for v in report["verdict"])
    assert any("no instant power field" in v and "1 s average" in v for v in report["verdict"])
    assert any(v.startswith("ok: nvidia-smi's power.draw and our sampled power (no counter) agree") for v in report["verdict"])
    smi_phase = report["load"]["phases"][-1]
    assert smi_phase["nvidia_smi_polled"]
    (p,) = smi_phase["gpus"]
    assert p["counter_j"] is None and p["ratios"]["sampled_over_counter"] is None
    assert _near(p["sampled_j"], 200.0 * smi_phase["duration_s"], 0.02)
    assert p["nvidia_smi"]["reference"] == "sampled" and p["ratios"]["smi_over_sampled"] == pytest.approx(1.0, abs=0.05)
    (m,) = report["load"]["energy_meter"]["gpus"]
    assert m["method"] == "sampled" and m["reference"] == "sampled" and m["ratio"] == pytest.approx(1.0, abs=0.02)
    assert report["cuda_visible_devices"]["mig"] == {"status": "skipped: no MIG device"}
    shared = report["shared_gpu"]
    assert shared["status"] == "pass" and shared["device_reference"] == "sampled"
    assert shared["sum_over_device"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.skipif(TORCH, reason="a real torch is importable: the stub would shadow it")
def test_the_torch_path_with_a_stand_in_torch(tmp_path, fake_gpu):
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(_STUB_TORCH)
    gpu = fake_gpu(MIG_CONFIG)
    report, proc, _ = _gpu_check(gpu, tmp_path, PYTHONPATH=str(stub.parent))
    assert proc.returncode == 0 and report["passed"], report["verdict"]
    assert report["machine"]["torch"] == {"importable": True, "version": "0.0+stub", "cuda": "12.4",
                                          "cuda_available": True, "device": "stub GPU"}
    load = report["load"]
    assert load["ran"] == "torch matmul on cuda:0 (GPU 0, NVIDIA H200) for 2 s"
    assert load["torch"]["matmuls"] > 0 and load["torch"]["dtype"] == "bfloat16"
    (phase,) = load["phases"]
    assert phase["name"] == "torch matmul" and phase["nvidia_smi_polled"]
    assert phase["gpus"][0]["ratios"]["smi_over_counter"] == pytest.approx(1.0, abs=0.05)
    assert report["shared_gpu"]["load"] == "torch matmul"
    assert all(w["load"]["matmuls"] > 0 for w in report["shared_gpu"]["windows"])


def test_no_nvidia_smi_on_the_path_is_said_and_the_rest_still_runs(tmp_path, fake_gpu):
    gpu = fake_gpu("count=1; power=const:150")
    empty = tmp_path / "bin"
    empty.mkdir()
    report, proc, _ = _gpu_check(gpu, tmp_path, seconds=1, PATH=str(empty))
    assert proc.returncode == 0 and report["passed"], report["verdict"]
    assert "note: nvidia-smi not found on PATH: its power.draw was not compared" in report["verdict"]
    assert report["load"]["nvidia_smi"] is None
    assert report["load"]["ran"].endswith("idle 1 s (nvidia-smi not found: no second phase)")
    assert [p["name"] for p in report["load"]["phases"]] == ["idle"]


def test_no_driver_still_writes_a_report_and_exits_1(tmp_path, fake_gpu):
    gpu = fake_gpu("unavailable=1")
    report, proc, _ = _gpu_check(gpu, tmp_path)
    assert proc.returncode == 1 and report["passed"] is False
    assert report["verdict"] == ["FAIL: NVML is not available: Driver Not Loaded"]
    assert report["machine"]["nvml_error"] and "gpus" not in report


def test_the_seconds_are_bounded_so_that_the_check_stays_under_5_minutes():
    proc = subprocess.run([sys.executable, "-m", "airflow_carbon", "gpu-check", "--seconds", "600"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "out of range: 1 to 60 s" in proc.stderr


def test_the_report_says_how_often_each_power_reading_changes(tmp_path, fake_gpu):
    """Back-to-back reads during the load tell a sensor's update period (what the meter's rate bound assumes) and
    what NVML's timestamps mark: on the simulated GPU, a 20 ms sensor whose field timestamp is the query's, and no
    driver sample buffer."""
    gpu = fake_gpu("count=1; power=square:100:400:0.03; power_period_s=0.02")  # a 20 ms average changes at every update
    report, proc, _ = _gpu_check(gpu, tmp_path, seconds=4)
    updates = report["load"]["sensor_updates"]
    assert updates is not None, proc.stdout + proc.stderr
    field, usage = updates["instant_field"], updates["power_usage"]
    assert field["reads"] > 200 and field["changes"] > 20
    assert 0.015 <= field["median_update_s"] <= 0.03 and 0.015 <= usage["median_update_s"] <= 0.03
    assert field["timestamp"] == "marks the query"
    assert updates["driver_samples"]["supported"] is False and updates["driver_samples"]["error"]
