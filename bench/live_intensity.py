"""Live grid intensity's cost (a bench worker; prints one JSON line).

Against the local GB Carbon Intensity simulator (real HTTP on loopback, so a real network adds its own
round trip to the cold figure): the cost of a task's live lookup with an empty host cache (cold: one
request) and with the figure in the cache (cached: what every later task of the host pays), a meter
window with and without a live source, and the requests 50 task processes starting together make.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "testing"))


def main() -> dict:
    warnings.simplefilter("ignore")
    from airflow_carbon import EnergyMeter
    from airflow_carbon.core.intensity import resolve_intensity
    from airflow_carbon.core.intensity_cache import IntensityCache
    from airflow_carbon.core.live import LiveIntensity, LiveSpec
    from carbon_testing.gridsim import UKCarbonIntensitySim, lookups_from_processes

    now = time.time()
    start = now - now % 1800
    series = {start + 1800 * k: 180.0 + 5 * k for k in range(-48, 48)}
    fallback = resolve_intensity("GB")
    out: dict = {}
    with UKCarbonIntensitySim(series) as sim:
        spec = LiveSpec("uk_carbon_intensity", sim.url)

        def lookup_s(cache_dir: str) -> float:
            t0 = time.perf_counter()
            live = LiveIntensity(spec, None, fallback=fallback, cache=IntensityCache(cache_dir))
            t = time.time()
            live.lookup(t, t)
            live.close()
            return time.perf_counter() - t0

        lookup_s(tempfile.mkdtemp())  # warm the imports and the server's first connection
        cold = [lookup_s(tempfile.mkdtemp()) for _ in range(15)]
        shared = tempfile.mkdtemp()
        lookup_s(shared)
        asked = len(sim.requests)
        cached = [lookup_s(shared) for _ in range(50)]
        out["lookup"] = {"cold_median_s": statistics.median(cold), "cached_median_s": statistics.median(cached),
                         "cached_requests": len(sim.requests) - asked}

        def window_s(live: bool) -> float:
            t0 = time.perf_counter()
            kw = {"live": LiveIntensity(spec, None, fallback=fallback, cache=IntensityCache(shared))} if live else {}
            with EnergyMeter(location="GB", cuda_visible_devices="", **kw):
                pass
            return time.perf_counter() - t0

        for live in (False, True):
            window_s(live)
        plain = statistics.median(window_s(False) for _ in range(30))
        with_live = statistics.median(window_s(True) for _ in range(30))
        out["window"] = {"plain_median_s": plain, "live_cached_median_s": with_live, "added_s": with_live - plain}

        before = len(sim.requests)
        results = lookups_from_processes(50, spec, None, tempfile.mkdtemp())
        out["concurrent"] = {"tasks": len(results), "requests": len(sim.requests) - before,
                             "failures": sum(1 for r in results if r[3]),
                             "median_s": statistics.median(r[0] for r in results), "max_s": max(r[0] for r in results)}
    out["peers"] = electricity_maps_side_by_side()
    return out


PARIS = (48.8566, 2.3522)


def _codecarbon_child(barrier, url: str, queue) -> None:
    from codecarbon.core import electricitymaps_api
    from codecarbon.external.geography import GeoMetadata

    electricitymaps_api.URL = url  # CodeCarbon's endpoint is a module constant: pointed at the simulator
    barrier.wait()
    t0 = time.perf_counter()
    try:
        g = electricitymaps_api.get_carbon_intensity(GeoMetadata("FRA", latitude=PARIS[0], longitude=PARIS[1]), "bench-token")
    except Exception as exc:
        g = repr(exc)
    queue.put((time.perf_counter() - t0, g))


def electricity_maps_side_by_side(n: int = 50) -> dict:
    """``n`` task processes starting together on one host, each asking Electricity Maps for the current
    figure: ours through the host cache, CodeCarbon 3.3 through its own (per-process) cache."""
    import multiprocessing

    from airflow_carbon.core.live import LiveSpec
    from carbon_testing.gridsim import ElectricityMapsSim, lookups_from_processes

    now = time.time()
    hour = now - now % 3600
    series = {"FR": {hour - 3600 * k: 40.0 + k for k in range(24)}}
    out = {}
    with ElectricityMapsSim(series, token="bench-token", now_s=now, places={PARIS: "FR"}) as sim:
        results = lookups_from_processes(n, LiveSpec("electricitymaps", sim.url, token="bench-token"), "FR", tempfile.mkdtemp(), location="FR")
        out["ours"] = {"requests": len(sim.requests), "failures": sum(1 for r in results if r[3]),
                       "median_s": statistics.median(r[0] for r in results)}
        before = len(sim.requests)
        ctx = multiprocessing.get_context("fork")
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        children = [ctx.Process(target=_codecarbon_child, args=(barrier, sim.url + "/v3/carbon-intensity/latest", queue)) for _ in range(n)]
        for child in children:
            child.start()
        cc = [queue.get(timeout=120) for _ in children]
        for child in children:
            child.join(timeout=60)
        out["codecarbon"] = {"requests": len(sim.requests) - before, "failures": sum(1 for _, g in cc if not isinstance(g, (int, float))),
                             "median_s": statistics.median(t for t, _ in cc)}
    return out


def table(r: dict) -> str:
    lk, w, c = r["lookup"], r["window"], r["concurrent"]
    lines = [
        "\nLive grid intensity (GB Carbon Intensity simulator, HTTP on loopback; a new LiveIntensity per lookup, as each task has)",
        f"| {'figure':<70} | {'value':>10} | {'goal':>8} |",
        f"|{'-'*72}|{'-'*12}|{'-'*10}|",
        f"| {'live lookup, cold host cache: one request (median ms)':<70} | {1e3*lk['cold_median_s']:10.2f} | {'':>8} |",
        f"| {'live lookup, figure in the host cache (median ms)':<70} | {1e3*lk['cached_median_s']:10.2f} | {'<= 5':>8} |",
        f"| {'requests made by 50 cached lookups':<70} | {lk['cached_requests']:10d} | {'0':>8} |",
        f"| {'meter window start+stop, bundled figure (median ms)':<70} | {1e3*w['plain_median_s']:10.2f} | {'':>8} |",
        f"| {'meter window start+stop, live source, cached (median ms)':<70} | {1e3*w['live_cached_median_s']:10.2f} | {'':>8} |",
        f"| {'added per task by the live source, cached (ms)':<70} | {1e3*w['added_s']:10.2f} | {'<= 5':>8} |",
        f"| {'50 task processes starting together, empty cache: requests':<70} | {c['requests']:10d} | {'1':>8} |",
        f"| {'  their lookups: median / max (ms)':<70} | {1e3*c['median_s']:4.0f} / {1e3*c['max_s']:3.0f} | {'':>8} |",
        f"| {'  lookups without a figure':<70} | {c['failures']:10d} | {'0':>8} |",
    ]
    p = r["peers"]
    o, cc = p["ours"], p["codecarbon"]
    lines += [
        "\n50 task processes starting together on one host, each wanting Electricity Maps' current figure (simulator)",
        f"| {'figure':<44} | {'airflow-carbon':>14} | {'CodeCarbon 3.3':>14} | {'ratio':>7} |",
        f"|{'-'*46}|{'-'*16}|{'-'*16}|{'-'*9}|",
        f"| {'requests to the API':<44} | {o['requests']:14d} | {cc['requests']:14d} | {cc['requests'] / max(o['requests'], 1):6.0f}x |",
        f"| {'lookups without a figure':<44} | {o['failures']:14d} | {cc['failures']:14d} | {'':>7} |",
        f"| {'median lookup (ms)':<44} | {1e3*o['median_s']:14.1f} | {1e3*cc['median_s']:14.1f} | {cc['median_s'] / o['median_s']:6.1f}x |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from worker import run  # bench/worker.py (this script's folder is on sys.path)

    run(main, table)
