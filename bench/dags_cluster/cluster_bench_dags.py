"""Benchmark DAGs of bench/cluster.py: N tasks of WORK_S seconds each, as plain @task and as @task.carbon.

Both name queue "gpu", so they run on the same Celery worker (the cluster's gpu worker, simulated GPU)
with the same concurrency: the only difference between the two DAGs is the measurement.
"""

from __future__ import annotations

import json
import os
import time

import pendulum
from airflow.sdk import dag, task

N = 6
WORK_S = 2.0
QUEUE = "gpu"


def _time_round_trips(folder: str) -> None:
    """(Bench only: ``BENCH_ROUND_TRIPS_DIR``.) Time every message a task process sends to its supervisor, which
    forwards it to the execution API: the file folder/<pid>.jsonl gets [kind, dag_id or null, seconds] per message.
    The task process parses this file before it runs the task, so the patch covers every message the task sends."""
    from airflow.sdk.execution_time.comms import CommsDecoder

    send = CommsDecoder.send
    if getattr(send, "bench_timed", False):
        return

    def timed(self, msg):
        start = time.perf_counter()
        try:
            return send(self, msg)
        finally:
            line = json.dumps([type(msg).__name__, getattr(msg, "dag_id", None), time.perf_counter() - start])
            with open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
                f.write(line + "\n")

    timed.bench_timed = True
    CommsDecoder.send = timed


if os.environ.get("BENCH_ROUND_TRIPS_DIR"):
    _time_round_trips(os.environ["BENCH_ROUND_TRIPS_DIR"])


def _work(i: int) -> int:
    time.sleep(WORK_S)  # a sleeping task: its duration is the same on a busy or an idle machine
    return i


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airflow-carbon", "bench"])
def cluster_bench_plain():
    @task(queue=QUEUE)
    def work(i: int) -> int:
        return _work(i)

    work.expand(i=list(range(N)))


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["airflow-carbon", "bench"])
def cluster_bench_carbon():
    @task.carbon(queue=QUEUE, location="FR")
    def work(i: int) -> int:
        return _work(i)

    work.expand(i=list(range(N)))


cluster_bench_plain()
cluster_bench_carbon()
