"""Benchmark DAGs: the same trivial callable, mapped 25 times, as plain @task and as @task.carbon."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

N = 25


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def bench_plain():
    @task
    def trivial(i: int) -> int:
        return i * i

    trivial.expand(i=list(range(N)))


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def bench_carbon():
    @task.carbon(location="FR")
    def trivial(i: int) -> int:
        return i * i

    trivial.expand(i=list(range(N)))


bench_plain()
bench_carbon()
