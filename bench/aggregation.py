"""Aggregation of a large run's records into the card metadata (a bench worker; prints one JSON line).

Records are realistic (8 or 1 GPUs each, every component with its details), serialised as XCom stores them
(one JSON list per mapped task instance, up to 3 tries each), then decoded, validated and aggregated
the way PublishModelCardOperator does; time and peak memory growth (max RSS) at 2,500, 5,000 and
10,000 records with 8 GPUs each and with 1 GPU each, each size in a fresh process.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import warnings


def base_record(gpus: int = 8) -> dict:
    from carbon_testing import fake_nvml

    fake_nvml.activate(f"count={gpus}; name=NVIDIA A100-SXM4-80GB; power=const:350")
    warnings.simplefilter("ignore")
    from airflow_carbon import EnergyMeter

    with EnergyMeter(location="gcp:us-central1", pue=1.1) as meter:
        time.sleep(0.2)
    return meter.record


def xcom_payloads(n_records: int, base: dict) -> list[str]:
    payloads, i, map_index = [], 0, 0
    while i < n_records:
        tries = [1, 2, 3][: 1 + map_index % 3] if n_records - i >= 3 else [1][: n_records - i]
        values = []
        for t in tries:
            r = copy.deepcopy(base)
            r["task"] = {"dag_id": "sweep", "run_id": "manual__1", "task_id": "train", "map_index": map_index, "try_number": t, "hostname": f"gpu-{map_index % 16}", "queue": "gpu"}
            r["host"] = f"gpu-{map_index % 16}"
            r["status"] = "success" if t == tries[-1] else "failed"
            values.append(r)
        payloads.append(json.dumps(values))
        i += len(tries)
        map_index += 1
    return payloads


def aggregate(payloads: list[str]) -> dict:
    from airflow_carbon.card.metadata import co2_eq_emissions
    from airflow_carbon.core.aggregate import breakdown, totals
    from airflow_carbon.core.record import validate_record

    records = [r for p in payloads for r in json.loads(p)]
    for r in records:
        validate_record(r)
    return {"co2": co2_eq_emissions(records, "fine-tuning", origin="DAG sweep"), "totals": totals(records), "n": len(breakdown(records))}


def measure(n: int, gpus: int) -> dict:
    """Time (s) and peak memory growth (MB, max RSS) of aggregating ``n`` records, in this fresh process."""
    import resource

    base = base_record(gpus)
    from airflow_carbon.core.record import validate_record

    validate_record(base)  # compile the validator outside the timing
    payloads = xcom_payloads(n, base)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    out = aggregate(payloads)
    seconds = time.perf_counter() - t
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert out["n"] == n
    return {"records": n, "gpus_per_record": gpus, "seconds": seconds, "peak_rss_growth_mb": growth_mb}


def main() -> None:
    import subprocess

    rows = []
    for gpus in (8, 1):
        for n in (2_500, 5_000, 10_000):
            out = subprocess.run([sys.executable, __file__, str(n), str(gpus)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
    else:
        main()
