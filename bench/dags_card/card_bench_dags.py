"""The DAG `bench/aggregation.py` seeds and publishes: a sweep of BENCH_SWEEP_INSTANCES mapped tracked task instances
(their records are seeded into XCom, not run) and the model-card publisher, which the bench runs for real; the card
is written to the folder card in the Airflow home."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

from airflow_carbon import PublishModelCardOperator


@dag(dag_id="card_bench_sweep", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def card_bench_sweep():
    @task.carbon(location="gcp:us-central1")
    def train(i: int) -> None:
        pass

    train.expand(i=list(range(int(os.environ.get("BENCH_SWEEP_INSTANCES", "1"))))) >> PublishModelCardOperator(
        task_id="publish", local_dir=os.path.join(os.environ.get("AIRFLOW_HOME", "/tmp"), "card"), training_type="fine-tuning"
    )


card_bench_sweep()
