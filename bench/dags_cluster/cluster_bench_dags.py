"""Benchmark DAGs of bench/cluster.py: N tasks of WORK_S seconds each, as plain @task and as @task.carbon.

Both name queue "gpu", so they run on the same Celery worker (the cluster's gpu worker, simulated GPU)
with the same concurrency: the only difference between the two DAGs is the measurement.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import dag, task

N = 6
WORK_S = 2.0
QUEUE = "gpu"


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
