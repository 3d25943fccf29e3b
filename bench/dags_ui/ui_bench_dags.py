"""DAGs whose history `bench/ui.py` seeds: 10 training pipelines of 10 tracked tasks each."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

for n in range(10):

    @dag(dag_id=f"train_pipeline_{n:02d}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
    def pipeline():
        for step in range(10):

            @task.carbon(task_id=f"train_{step}", location="gcp:us-central1")
            def train() -> None:
                pass

            train()

    pipeline()
