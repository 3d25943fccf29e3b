"""DAGs for the Airflow-layer tests (run with dag.test() by tests/test_airflow_tracking.py)."""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task

from airflow_carbon import CarbonOperator, tracked

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_mapped():
    @task.carbon(location="FR", training_type="fine-tuning", multiple_outputs=True)
    def train(lr: float, label: str) -> dict:
        total = sum(i * i for i in range(200_000))
        return {"lr": lr, "label": label, "checksum": total % 97}

    @task
    def collect(lrs: list[float]) -> list[float]:
        return sorted(lrs)

    results = train.partial(label="{{ dag_run.run_id }}").expand(lr=[0.1, 0.01, 0.001])
    collect(results["lr"])
    train.override(task_id="train_once", pue=1.2)(lr=0.5, label="single")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_flaky():
    @task.carbon(location="CA-QC", retries=1, retry_delay=timedelta(seconds=0))
    def flaky(ti=None) -> str:
        if ti.try_number == 1:
            raise RuntimeError("first try fails")
        return "ok"

    flaky()


def _classic(n: int) -> int:
    return sum(range(n))


@dag(schedule=None, start_date=START, catchup=False)
def carbon_classic():
    CarbonOperator(task_id="classic", python_callable=_classic, op_args=[1000], location="US-CA")
    burn = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    tracked(BashOperator)(task_id="bash_child", bash_command=f"{sys.executable} -c '{burn}'", location="DE")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_listener():
    @task(queue=os.environ.get("CARBON_TEST_QUEUE", "gpu"))
    def plain() -> int:
        return sum(range(100_000))

    @task.carbon(queue="gpu", location="FR")
    def decorated() -> int:
        return 1

    @task(queue="cpu-only")
    def elsewhere() -> int:
        return 2

    plain()
    decorated()
    elsewhere()


@dag(schedule=None, start_date=START, catchup=False, params={"region": "FR", "g_per_kwh": 56})
def carbon_templated():
    """Options taken from params (run_conf overrides them), rendered by Airflow and validated then."""
    region = "{{ params.region }}"

    @task.carbon(location=region)
    def decorated() -> int:
        return 1

    @task.carbon(location=region)
    def mapped(x: int) -> int:
        return x

    decorated()
    mapped.expand(x=[1, 2])
    CarbonOperator(task_id="classic", python_callable=_classic, op_args=[10], location=region)
    CarbonOperator.partial(task_id="classic_mapped", python_callable=_classic, location=region).expand(op_args=[[1], [2]])
    tracked(BashOperator)(task_id="bash", bash_command="true", location=region)
    CarbonOperator(task_id="intensity", python_callable=_classic, op_args=[10], g_per_kwh="{{ params.g_per_kwh }}")


carbon_mapped()
carbon_flaky()
carbon_classic()
carbon_listener()
carbon_templated()
