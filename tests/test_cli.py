"""`airflow-carbon measure` as a user runs it: a real child process, the real CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_carbon import load_record

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "airflow_carbon", "measure"]


def _run(args, env=None, **kw):
    return subprocess.run(CLI + args, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT, **kw)


def test_runs_the_command_prints_a_record_and_keeps_its_output_and_status(tmp_path):
    out = tmp_path / "record.json"
    code = "import sys; print('trained'); sys.exit(3)"
    result = _run(["--location", "Quebec", "-o", str(out), "--", sys.executable, "-c", code])
    assert result.returncode == 3
    assert result.stdout == "trained\n"  # the command's stdout is untouched
    assert "Quebec, Canada" in result.stderr and "gCO2e" in result.stderr
    record = load_record(out.read_text())
    assert record["intensity"]["location"] == "CA-QC"
    assert record["components"]["cpu"]["method"] in ("rapl", "estimated")


def test_json_to_stdout_with_dash(tmp_path):
    result = _run(["--g-per-kwh", "100", "--json", "-o", "-", "--", "true"])
    assert result.returncode == 0
    record = load_record(result.stdout)
    assert record["intensity"] == {**record["intensity"], "g_per_kwh": 100.0, "method": "explicit"}


def test_measures_the_gpu_of_a_child_process(fake_gpu):
    gpu = fake_gpu("count=1; power=const:200")
    result = _run(["--location", "FR", "-o", "-", "--", sys.executable, "-c", "import time; time.sleep(1)"], env=gpu.env)
    assert result.returncode == 0, result.stderr
    record = load_record(result.stdout)
    (entry,) = record["gpus"]
    assert entry["method"] == "counter"
    assert entry["energy_j"] == pytest.approx(200 * record["duration_s"], rel=0.01)
    assert "[counter]" in result.stderr


def test_without_an_nvidia_driver_gpu_energy_is_exactly_zero():
    env = {k: v for k, v in os.environ.items() if k not in ("FAKE_NVML_CONFIG", "LD_LIBRARY_PATH")}
    result = subprocess.run([*CLI, "-l", "FR", "-o", "-", "--", "true"], capture_output=True, text=True, env=env, cwd=ROOT)
    record = load_record(result.stdout)
    assert record["components"]["gpu"] == {"energy_kwh": 0.0, "method": "none"}
    assert not any("GPU" in w for w in record["warnings"])


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--location", "Frnace"], {}, "Did you mean: France (FR)"),
        (["--pue", "-1"], {}, "pue=-1.0 is invalid"),
        (["--g-per-kwh", "-5"], {}, "-5"),
        ([], {"CUDA_VISIBLE_DEVICES": "0,gpu1"}, "'gpu1' is not a GPU index"),
    ],
)
def test_bad_configuration_exits_2_before_running_the_command(tmp_path, args, env, message):
    marker = tmp_path / "ran"
    result = _run([*args, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"], env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not marker.exists()


def test_missing_command_and_unknown_program():
    assert _run([]).returncode == 2
    result = _run(["-l", "FR", "--", "no-such-program-xyz"])
    assert result.returncode == 127 and "command not found: no-such-program-xyz" in result.stderr


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("airflow-carbon")
    result = subprocess.run([str(exe), "measure", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--location" in result.stdout
