"""Carbon-aware start: a year of real hourly intensity replayed through the planner (a bench worker;
prints one JSON line, or a table with --table).

A daily-style 2 h job is requested at every hour of 2022 with ``start_within`` of 4, 8 and 24 h. The
planner (``airflow_carbon.core.planner.plan_start``) chooses its start on two forecasts:

- **perfect**: the actual hourly values;
- **realistic**: for each hour, half the same hour of the day before and half the actual value times
  (1 + e), e ~ Normal(0, 0.10), seeded (a persistence forecast blended with a noisy truth).

The avoided share is the grams of every job at its planned start, from the actual values, against
starting at once: sum over requests (g planned - g now) / sum (g now), next to the perfect-foresight
optimum (the best start by brute force over the actual values). Data: bench/data/README.md.
"""

from __future__ import annotations

import csv
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZONES = ("DE", "FR", "GB", "PL", "CA-ON")
WINDOWS_H = (4, 8, 24)
JOB_H = 2
HOUR_S = 3600.0


def _series(zone: str) -> tuple[list[float], list[float]]:
    with open(HERE / "data" / f"{zone}_2022_hourly_lca.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ts = [datetime.strptime(r["datetime_utc"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() for r in rows]
    return ts, [float(r["g_per_kwh_lifecycle"]) for r in rows]


def _realistic(g: list[float], seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [0.5 * (g[k - 24] if k >= 24 else g[k]) + 0.5 * g[k] * (1 + rng.gauss(0, 0.10)) for k in range(len(g))]


def replay(zone: str) -> dict:
    from airflow_carbon.core.planner import Forecast, plan_start
    from airflow_carbon.core.segments import IntensityInterval

    ts, g = _series(zone)
    actual = Forecast([IntensityInterval(t, t + HOUR_S, v, zone) for t, v in zip(ts, g, strict=True)])
    noisy = Forecast([IntensityInterval(t, t + HOUR_S, v, zone) for t, v in zip(ts, _realistic(g), strict=True)])
    out = {}
    for w in WINDOWS_H:
        requests = range(len(ts) - w - JOB_H)
        now = sum(actual.mean(ts[k], JOB_H * HOUR_S) for k in requests)
        optimum = sum(min(actual.mean(ts[s], JOB_H * HOUR_S) for s in range(k, k + w + 1)) for k in requests)
        row = {"optimum_pct": 100 * (optimum - now) / now}
        for name, forecast, threshold in (("perfect", actual, 0.0), ("realistic", noisy, 0.0), ("realistic_5pct", noisy, 5.0)):
            grams, waits = 0.0, []
            for k in requests:
                plan = plan_start(forecast, now_s=ts[k], start_within_s=w * HOUR_S, duration_s=JOB_H * HOUR_S, min_saving_pct=threshold)
                grams += actual.mean(plan.planned_start_s, JOB_H * HOUR_S)
                waits.append(plan.wait_s / HOUR_S)
            row[f"{name}_pct"] = 100 * (grams - now) / now
            row[f"{name}_mean_wait_h"] = statistics.mean(waits)
        row["realistic_share_of_optimum"] = row["realistic_pct"] / row["optimum_pct"]
        out[str(w)] = row
    return out


def decision_cost() -> dict:
    """The cost of one task's decision once its Connection is read, with the forecast in the host cache: the
    path ``start_within`` takes on a worker (``core.live.forecast`` through the cache, then
    ``core.planner.plan_start`` for 8 h), on Electricity Maps' 72 hourly points and WattTime's 864 5-minute
    points (the simulators), and the first, uncached decision beside them."""
    import tempfile
    import warnings

    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE.parent / "testing"))
    from airflow_carbon.core.intensity_cache import IntensityCache
    from airflow_carbon.core.live import LiveSpec, forecast
    from airflow_carbon.core.planner import plan_start
    from carbon_testing.gridsim import ElectricityMapsSim, WattTimeSim

    now = time.time()
    hour = now - now % HOUR_S
    em_series = {"DE": {hour + HOUR_S * k: 200 + 50 * ((k * 7) % 5) for k in range(-24, 72)}}
    moer = {"CAISO_NORTH": [700 + 300 * ((k * 11) % 7) / 7 for k in range(864)]}
    out: dict = {}
    with ElectricityMapsSim(em_series, token="t", now_s=now) as em, \
            WattTimeSim(moer, username="u", password="p", now_s=now) as wt:
        cases = {"electricitymaps": (LiveSpec("electricitymaps", em.url, token="t"), "DE", em),
                 "watttime": (LiveSpec("watttime", wt.url, username="u", password="p"), "CAISO_NORTH", wt)}
        for name, (spec, zone, sim) in cases.items():
            cache_dir = tempfile.mkdtemp()

            def decide(spec=spec, zone=zone, cache_dir=cache_dir) -> tuple[float, int]:
                t0 = time.perf_counter()
                t = time.time()
                intervals = forecast(spec, zone, cache=IntensityCache(cache_dir), now_s=t)
                plan_start(intervals, now_s=t, start_within_s=8 * HOUR_S, duration_s=2 * HOUR_S)
                return time.perf_counter() - t0, len(intervals)

            first, points = decide()
            requests = len(sim.requests)
            costs = [decide()[0] for _ in range(50)]
            out[name] = {"points": points, "first_s": first, "cached_median_s": statistics.median(costs),
                         "requests_after_first": len(sim.requests) - requests}
    return out


def main() -> dict:
    return {"zones": {zone: replay(zone) for zone in ZONES}, "decision": decision_cost()}


def table(r: dict) -> str:
    lines = [
        "\nCarbon-aware start: a 2 h job requested at every hour of 2022 (Electricity Maps hourly, lifecycle), grams "
        "against starting at once",
        f"| {'zone':<6} | {'within':>6} | {'optimum':>8} | {'perfect':>8} | {'realistic':>9} | {'of optimum':>10} | "
        f"{'realistic, 5 % rule':>19} | {'mean wait h':>11} |",
        f"|{'-'*8}|{'-'*8}|{'-'*10}|{'-'*10}|{'-'*11}|{'-'*12}|{'-'*21}|{'-'*13}|",
    ]
    for zone, rows in r["zones"].items():
        for w, row in rows.items():
            lines.append(f"| {zone:<6} | {w + ' h':>6} | {row['optimum_pct']:7.1f}% | {row['perfect_pct']:7.1f}% | "
                         f"{row['realistic_pct']:8.1f}% | {100 * row['realistic_share_of_optimum']:9.0f}% | "
                         f"{row['realistic_5pct_pct']:18.1f}% | {row['realistic_mean_wait_h']:11.1f} |")
    lines.append("\nDecision cost per task once its Connection is read (forecast from the host cache + an 8 h plan), goal <= 20 ms")
    lines.append(f"| {'source':<16} | {'points':>6} | {'first (fetch), ms':>17} | {'cached, ms (median)':>19} | {'requests after':>14} |")
    lines.append(f"|{'-'*18}|{'-'*8}|{'-'*19}|{'-'*21}|{'-'*16}|")
    for name, d in r["decision"].items():
        lines.append(f"| {name:<16} | {d['points']:>6} | {1e3 * d['first_s']:17.2f} | {1e3 * d['cached_median_s']:19.2f} | "
                     f"{d['requests_after_first']:>14} |")
    lines.append("Goal: perfect = optimum exactly; realistic >= 70 % of the optimum.")
    return "\n".join(lines)


if __name__ == "__main__":
    from worker import run  # bench/worker.py (this script's folder is on sys.path)

    run(main, table)
