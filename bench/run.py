"""`make bench`: airflow-carbon beside CodeCarbon on the same simulated GPU; prints a table, writes bench/results.json.

Accuracy: each scenario runs in its own process with a fake libnvidia-ml.so.1 (carbon_testing.fake_nvml) whose
power trace has an exact integral. Our counter path, our sampled path and CodeCarbon's
OfflineEmissionsTracker each measure a task window on the same simulated GPU, one after the other in
the same process; the error is against the trace's integral over that task's window. Overhead: the wall time of a window's start + stop, the sampling thread's CPU time, and
`python -X importtime`. Figures are ratios where peers are compared.

The source tree is byte-compiled first (as ``pip install`` does for a wheel): where
``PYTHONDONTWRITEBYTECODE`` is set, as on this project's machines, every task process of the Airflow
benches would otherwise recompile airflow_carbon from source (about 15 ms a process here), a cost no
installed deployment pays.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from carbon_testing import fake_nvml  # the simulated GPU

ROOT = Path(__file__).resolve().parents[1]

SCENARIOS = {
    # name: (fake NVML config, task seconds)
    "constant 300 W, 10 s": ("count=1; counter=1; power=const:300", 10.0),
    "bursty 100/400 W (0.3 s), 10 s": ("count=1; counter=1; power=square:100:400:0.3", 10.0),
    "2 s task, bursty": ("count=1; counter=1; power=square:100:400:0.3", 2.0),
    "no counter (pre-Volta), bursty, 10 s": ("count=1; counter=0; cc=6.0; name=Tesla P100-PCIE-16GB; power=square:100:400:0.3", 10.0),
}
OVERHEAD_WINDOWS = 100
CODECARBON_OVERHEAD_WINDOWS = 10  # CodeCarbon takes seconds per window; fewer keeps `make bench` short


def _codecarbon_tracker():
    from codecarbon import OfflineEmissionsTracker

    return OfflineEmissionsTracker(
        country_iso_code="FRA", save_to_file=False, log_level="error", tracking_mode="process", allow_multiple_runs=True
    )


def _window(meter_start, meter_stop, seconds: float) -> tuple[float, float]:
    """One task window: start the meter, run the task, stop the meter; returns the task's (t0, t1)."""
    meter_start()
    t0 = time.monotonic()
    time.sleep(seconds)  # the task: the simulated GPU draws the trace's power meanwhile
    t1 = time.monotonic()
    meter_stop()
    return t0, t1


def accuracy_worker(config: str, seconds: float) -> dict:
    """Run in a child process: each meter measures its own task window on the same fake GPU.

    The truth of each window is the trace's integral from the moment the meter's start() returned to
    the moment its stop() was called: the task's energy, with no meter's own set-up in it.
    """
    gpu = fake_nvml.activate(config)
    warnings.simplefilter("ignore")
    from airflow_carbon import EnergyMeter

    result = {}
    for key, kwargs in (("ours_counter", {}), ("ours_sampled", {"gpu_energy": "sampled"})):
        meter = EnergyMeter(location="FR", **kwargs)
        t0, t1 = _window(meter.start, meter.stop, seconds)
        entry = meter.record["gpus"][0]
        result[key] = {"truth_j": gpu.true_energy_j(0, t0, t1), "energy_j": entry["energy_j"], "method": entry["method"],
                       "samples": entry["samples"], "sampler_cpu_s": meter.sampler_cpu_s, "duration_s": meter.record["duration_s"]}
    tracker = _codecarbon_tracker()
    t0, t1 = _window(tracker.start, tracker.stop, seconds)
    result["codecarbon"] = {"truth_j": gpu.true_energy_j(0, t0, t1),
                            "energy_j": float(tracker.final_emissions_data.gpu_energy) * 3.6e6}
    return result


def overhead_worker(config: str) -> dict:
    """Run in a child process: wall time (s) of setup + start + stop, ours and CodeCarbon's."""
    fake_nvml.activate(config)
    warnings.simplefilter("ignore")
    from airflow_carbon import EnergyMeter

    ours_full, ours_start_stop = [], []
    warm = EnergyMeter(location="FR")  # warm-up: NVML init and lazy imports happen once per process
    warm.start()
    warm.stop()
    for _ in range(OVERHEAD_WINDOWS):
        a = time.perf_counter()
        meter = EnergyMeter(location="FR")
        b = time.perf_counter()
        meter.start()
        meter.stop()
        c = time.perf_counter()
        ours_full.append(c - a)
        ours_start_stop.append(c - b)
    cc = []
    _codecarbon_tracker()  # warm-up
    for _ in range(CODECARBON_OVERHEAD_WINDOWS):
        a = time.perf_counter()
        tracker = _codecarbon_tracker()
        tracker.start()
        tracker.stop()
        cc.append(time.perf_counter() - a)
    return {
        "ours_setup_start_stop_s": statistics.median(ours_full),
        "ours_start_stop_s": statistics.median(ours_start_stop),
        "codecarbon_setup_start_stop_s": statistics.median(cc),
        "windows": {"ours": OVERHEAD_WINDOWS, "codecarbon": CODECARBON_OVERHEAD_WINDOWS},
    }


def _child(args: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], env={**os.environ, **env}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_time_us(module: str) -> tuple[int, list[str]]:
    """Cumulative import time (µs) of ``module`` in a fresh interpreter, and the top-level packages it loaded."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True)
    total, packages = 0, set()
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            packages.add(m.group(4).split(".")[0])
            if m.group(4) == module:
                total = int(m.group(2))
    return total, sorted(packages)


def _worker(script: str, *args: str) -> dict:
    """Run a bench worker in its own process; its last stdout line is its JSON result."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench worker {script} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _err(measured: float | None, truth: float) -> float | None:
    return None if measured is None else 100.0 * (measured - truth) / truth


def main() -> None:
    for tree in ("airflow_carbon", "testing/carbon_testing", "bench"):
        compileall.compile_dir(ROOT / tree, quiet=1)
    lib_env = fake_nvml.activate("count=1").env
    results: dict = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                                 "cores": os.cpu_count()}, "accuracy": {}, "overhead": {}}
    rows = []
    for name, (config, seconds) in SCENARIOS.items():
        r = _child(["--accuracy", config, str(seconds)], {**lib_env, "FAKE_NVML_CONFIG": config})
        results["accuracy"][name] = r
        for tool, label in (("ours_counter", "airflow-carbon default"), ("ours_sampled", "airflow-carbon forced sampled"), ("codecarbon", "CodeCarbon 3.3")):
            e = _err(r[tool]["energy_j"], r[tool]["truth_j"])
            r[tool]["error_pct"] = e
            method = r[tool].get("method", "")
            rows.append((name, label + (f" [{method}]" if method else ""), r[tool]["truth_j"], r[tool]["energy_j"], e))
    ov = _child(["--overhead", "count=1; power=const:300"], {**lib_env, "FAKE_NVML_CONFIG": "count=1; power=const:300"})
    results["overhead"] = ov
    results["airflow"] = _worker("airflow_overhead.py")
    results["aggregation"] = _worker("aggregation.py")
    results["ui"] = _worker("ui.py")
    results["cluster"] = _worker("cluster.py", "--json-line")
    results["live_intensity"] = _worker("live_intensity.py")
    results["carbon_aware"] = _worker("carbon_aware.py")
    results["shared_gpu"] = _worker("shared_gpu.py")
    ours_imp, ours_pkgs = import_time_us("airflow_carbon.core.meter")
    cc_imp, _ = import_time_us("codecarbon")
    forbidden = sorted({"airflow", "huggingface_hub", "pandas", "pynvml", "fastapi"} & set(ours_pkgs))
    results["import"] = {"airflow_carbon.meter_us": ours_imp, "codecarbon_us": cc_imp, "forbidden_imported": forbidden}
    const = results["accuracy"]["constant 300 W, 10 s"]
    bursty = results["accuracy"]["bursty 100/400 W (0.3 s), 10 s"]
    cpu_pct_counter = 100 * const["ours_counter"]["sampler_cpu_s"] / const["ours_counter"]["duration_s"]
    cpu_pct_fast = 100 * bursty["ours_sampled"]["sampler_cpu_s"] / bursty["ours_sampled"]["duration_s"]
    results["sampler_cpu_pct_of_core"] = {"counter path, constant 300 W, 100 ms": cpu_pct_counter,
                                          "sampled path, bursty (fast sampling), 100 ms": cpu_pct_fast}

    print("\nEnergy accuracy on the simulated GPU (error against the trace's exact integral)")
    print(f"| {'scenario':<38} | {'meter':<34} | {'true J':>9} | {'measured J':>10} | {'error':>8} |")
    print(f"|{'-'*40}|{'-'*36}|{'-'*11}|{'-'*12}|{'-'*10}|")
    for name, label, truth, measured, e in rows:
        ms = "missing" if measured is None else f"{measured:10.1f}"
        es = "-" if e is None else f"{e:+7.3f}%"
        print(f"| {name:<38} | {label:<34} | {truth:9.1f} | {ms:>10} | {es:>8} |")
    ratio = ov["codecarbon_setup_start_stop_s"] / ov["ours_setup_start_stop_s"]
    print("\nOverhead")
    print(f"| {'figure':<62} | {'airflow-carbon':>14} | {'CodeCarbon':>12} | {'ratio':>8} |")
    print(f"|{'-'*64}|{'-'*16}|{'-'*14}|{'-'*10}|")
    print(f"| {'median setup + start + stop of a window (ms)':<62} | {1e3*ov['ours_setup_start_stop_s']:14.2f} | {1e3*ov['codecarbon_setup_start_stop_s']:12.1f} | {ratio:7.0f}x |")
    print(f"| {'median start + stop of a window (ms)':<62} | {1e3*ov['ours_start_stop_s']:14.2f} | {'':>12} | {'':>8} |")
    print(f"| {'sampling thread CPU, % of one core (counter path, 100 ms)':<62} | {cpu_pct_counter:14.3f} | {'':>12} | {'':>8} |")
    print(f"| {'sampling thread CPU, % of one core (sampled, bursty: 10 ms)':<62} | {cpu_pct_fast:14.3f} | {'':>12} | {'':>8} |")
    print(f"| {'import time (ms): airflow_carbon.core.meter vs codecarbon':<62} | {ours_imp/1e3:14.1f} | {cc_imp/1e3:12.1f} | {cc_imp/max(ours_imp,1):7.0f}x |")
    a = results["airflow"]
    print("\nAirflow (one dag.test() session, SQLite; median over each DAG's mapped task runs)")
    print(f"| {'figure':<62} | {'value':>14} | {'goal':>12} |")
    print(f"|{'-'*64}|{'-'*16}|{'-'*14}|")
    print(f"| {'plain @task, median task duration (ms)':<62} | {1e3*a['plain_task_median_s']:14.1f} | {'':>12} |")
    print(f"| {'@task.carbon, median task duration (ms)':<62} | {1e3*a['carbon_task_median_s']:14.1f} | {'':>12} |")
    print(f"| {'added per task by @task.carbon (ms)':<62} | {1e3*a['added_per_task_s']:14.1f} | {'<= 50':>12} |")
    print(f"| {'import time the plugin adds to a task process (ms)':<62} | {1e3*a['plugin_import_s']:14.1f} | {'<= 20':>12} |")
    print("\nModel card: records decoded from XCom JSON, validated and aggregated into co2_eq_emissions (fresh process each)")
    print(f"| {'records':>8} | {'GPUs/record':>11} | {'seconds':>8} | {'peak RSS growth (MB)':>20} | {'goal':>8} |")
    print(f"|{'-'*10}|{'-'*13}|{'-'*10}|{'-'*22}|{'-'*10}|")
    for row in results["aggregation"]:
        goal = "<= 2 s" if row["records"] == 10_000 else ""
        print(f"| {row['records']:>8} | {row['gpus_per_record']:>11} | {row['seconds']:8.2f} | {row['peak_rss_growth_mb']:20.1f} | {goal:>8} |")
    u = results["ui"]
    print(f"\nUI with a year of history: {u['runs']} DAG runs x 10 tracked tasks ({u['task_instances']} task instances, "
          f"{u['records']} records, SQLite {u['db_mb']:.0f} MB); real api-server, HTTP on loopback, median of 7")
    print(f"| {'page':<70} | {'median ms':>9} | {'max ms':>7} | {'KB':>6} | {'goal':>8} |")
    print(f"|{'-'*72}|{'-'*11}|{'-'*9}|{'-'*8}|{'-'*10}|")
    for row in u["pages"]:
        goal = "<= 300" if "/runs/" not in row["path"] else ""
        print(f"| {row['path'][:70]:<70} | {row['median_ms']:9.0f} | {row['max_ms']:7.0f} | {row['bytes']/1e3:6.0f} | {goal:>8} |")
    overview = next(r for r in u["pages"] if r["path"] == "/carbon/api/overview?period=all")
    print(f"| {'naive: decode every record XCom and sum in Python (no summaries)':<70} | {u['naive_decode_all_ms']:9.0f} | "
          f"{'':>7} | {'':>6} | {u['naive_decode_all_ms'] / overview['median_ms']:7.0f}x |")
    from cluster import table as cluster_table  # bench/cluster.py (this script's folder is on sys.path)

    print(cluster_table(results["cluster"]))
    from live_intensity import table as live_table  # bench/live_intensity.py

    print(live_table(results["live_intensity"]))
    from carbon_aware import table as carbon_aware_table  # bench/carbon_aware.py

    print(carbon_aware_table(results["carbon_aware"]))
    from shared_gpu import table as shared_gpu_table  # bench/shared_gpu.py

    print(shared_gpu_table(results["shared_gpu"]))
    print(f"\nMedians over {ov['windows']['ours']} windows (ours) and {ov['windows']['codecarbon']} (CodeCarbon); "
          f"{a['task_runs']['bench_carbon']} task runs per DAG. "
          f"airflow_carbon.core.meter imports airflow/huggingface_hub/pandas/pynvml: {forbidden or 'none'}")
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("wrote bench/results.json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--accuracy", nargs=2, metavar=("CONFIG", "SECONDS"))
    parser.add_argument("--overhead", metavar="CONFIG")
    a = parser.parse_args()
    if a.accuracy:
        print(json.dumps(accuracy_worker(a.accuracy[0], float(a.accuracy[1]))))
    elif a.overhead:
        print(json.dumps(overhead_worker(a.overhead)))
    else:
        main()
