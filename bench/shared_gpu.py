"""Shared GPU: two jobs on one simulated GPU at once, measured by airflow-carbon and by CodeCarbon 3.3 (a bench
worker; prints one JSON line, or a table with --table).

Each tool runs the same two jobs as two processes on one simulated GPU at a constant 300 W: job A 6 s, job B
6 s starting 3 s after A (3 s of overlap), then the same with a bursty 100/400 W (0.3 s) trace. Each tool's
two GPU figures are summed and compared with what the device drew over the union of the two windows (the
trace's exact integral over each tool's own windows: airflow-carbon's from its records, CodeCarbon's from the
monotonic clock read around its tracker's start and stop): CodeCarbon charges each tracker the whole GPU, airflow-carbon splits it
(core/sharing.py). The coordination cost is the time one host sample spends on the split (the registry read
and the share, NVML's counter read included) with 2 and 16 windows registered, and per sampling tick at the
default 100 ms (ten sampling ticks per host sample).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "testing"))

TRACES = {"constant 300 W": "power=const:300", "bursty 100/400 W (0.3 s)": "power=square:100:400:0.3"}
PLAN = ((0.0, 6.0), (3.0, 6.0))  # (start delay s, length s) of job A and job B

_CODECARBON_JOB = """
import sys, time, warnings
warnings.simplefilter("ignore")
from codecarbon import OfflineEmissionsTracker
t = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error", tracking_mode="process",
                            allow_multiple_runs=True)
t0 = time.monotonic()
t.start()
time.sleep(float(sys.argv[1]))
t.stop()
print(t.final_emissions_data.gpu_energy * 3.6e6, t0, time.monotonic())
"""


def _ours(state: str, seconds: float, env: dict[str, str]) -> subprocess.Popen:
    out = tempfile.mktemp(suffix=".json")
    cmd = [sys.executable, "-m", "airflow_carbon", "measure", "--state-dir", state, "--g-per-kwh", "100", "-o", out,
           "--", "sleep", str(seconds)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.out = out  # type: ignore[attr-defined]
    return proc


def _theirs(seconds: float, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CODECARBON_JOB, str(seconds)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _run(tool: str, gpu, state: str) -> dict:
    env = {**os.environ, **gpu.env}
    procs, t0 = [], time.monotonic()
    for delay, seconds in PLAN:
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        procs.append(_ours(state, seconds, env) if tool == "airflow-carbon" else _theirs(seconds, env))
    figures, spans = [], []
    wall_to_mono = time.monotonic() - time.time()
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        if tool == "airflow-carbon":
            with open(proc.out) as fh:  # type: ignore[attr-defined]
                record = json.load(fh)
            os.unlink(proc.out)  # type: ignore[attr-defined]
            figures.append(record["gpus"][0]["energy_j"])
            spans.append(tuple(_unix(record[k]) + wall_to_mono for k in ("started_at", "ended_at")))
        else:
            joules, start, stop = stdout.strip().splitlines()[-1].split()
            figures.append(float(joules))
            spans.append((float(start), float(stop)))
    # what the device drew while either job's window was open (the union of the two windows)
    (a0, a1), (b0, b1) = sorted(spans)
    truth = gpu.true_energy_j(0, a0, a1) + gpu.true_energy_j(0, max(a1, b0), max(a1, b1))
    return {"jobs_j": figures, "sum_j": sum(figures), "device_j": truth, "ratio": sum(figures) / truth}


def _unix(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def coordination_cost(windows: int) -> dict:
    """Seconds one host sample spends splitting the GPU with ``windows`` windows registered (median of 200), in
    the steady state (the registry unchanged since the last listing) and just after a window opened or closed
    (the folder listed and its files read again)."""
    from airflow_carbon.core import nvml
    from airflow_carbon.core.devices import parse_visible_devices
    from airflow_carbon.core.gpu import GpuWindow
    from airflow_carbon.core.sharing import WindowRegistry
    from carbon_testing.fake_nvml import activate

    state = tempfile.mkdtemp()
    with activate("count=1; power=const:300"):
        gpus, _ = nvml.visible_gpus(parse_visible_devices(None, None))
        others = WindowRegistry(state)
        for _ in range(windows - 1):
            others.open([gpus[0].uuid], time.monotonic())  # this process's pid: alive, so counted
        registry = WindowRegistry(state)
        window = GpuWindow(gpus, registry=registry)
        t = time.monotonic()
        window.register(t)
        window.start(t)
        time.sleep(0.1)  # past the coarse clock of the folder's stamp: a steady state
        steady, changed = [], []
        for k in range(200):
            t += 1.0
            if k % 2:
                registry._mtime_ns = -1  # as after another window opened or closed: list the folder again
            c0 = time.perf_counter()
            window.attribute(t)
            (changed if k % 2 else steady).append(time.perf_counter() - c0)
        window.close(t)
    host_sample = statistics.median(steady)
    return {"host_sample_s": host_sample, "per_sampling_tick_s": host_sample / 10,
            "after_a_change_s": statistics.median(changed)}


def main() -> dict:
    from carbon_testing.fake_nvml import activate

    out: dict = {"plan": PLAN, "traces": {}}
    for name, trace in TRACES.items():
        row = {}
        for tool in ("airflow-carbon", "codecarbon"):
            with activate(f"count=1; {trace}") as gpu:
                row[tool] = _run(tool, gpu, tempfile.mkdtemp())
        out["traces"][name] = row
    out["coordination"] = {str(n): coordination_cost(n) for n in (2, 16)}
    return out


def table(r: dict) -> str:
    lines = [
        "\nShared GPU: two jobs on one simulated GPU (A 6 s; B 6 s from 3 s: 3 s overlap), each tool's two GPU figures "
        "summed against what the device drew",
        f"| {'trace':<26} | {'tool':<16} | {'job A J':>8} | {'job B J':>8} | {'sum J':>8} | {'device J':>8} | {'sum / device':>12} |",
        f"|{'-'*28}|{'-'*18}|{'-'*10}|{'-'*10}|{'-'*10}|{'-'*10}|{'-'*14}|",
    ]
    for trace, row in r["traces"].items():
        for tool, x in row.items():
            a, b = x["jobs_j"]
            lines.append(f"| {trace:<26} | {tool:<16} | {a:8.1f} | {b:8.1f} | {x['sum_j']:8.1f} | {x['device_j']:8.1f} | "
                         f"{x['ratio']:11.3f}x |")
    lines.append("\nCoordination cost of the split (registry read + share + NVML counter read), goal <= 0.1 ms per sampling tick")
    for n, c in r["coordination"].items():
        lines.append(f"  {n:>2} windows registered: {1e3 * c['host_sample_s']:.3f} ms per host sample (1 s), "
                     f"{1e3 * c['per_sampling_tick_s']:.4f} ms per sampling tick (100 ms); "
                     f"{1e3 * c['after_a_change_s']:.3f} ms for the host sample after a window opens or closes")
    return "\n".join(lines)


if __name__ == "__main__":
    from worker import run  # bench/worker.py (this script's folder is on sys.path)

    run(main, table)
