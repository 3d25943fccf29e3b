"""``[carbon] gpu_queue`` sends tracked tasks to GPU workers: mapped or not, decorated or classic, unless
the task (or the DAG's default_args) names a queue. Checked on the parsed DAG, as the scheduler sees it."""

from __future__ import annotations

import pendulum
import pytest

pytestmark = pytest.mark.airflow


@pytest.fixture
def gpu_queue(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CARBON__GPU_QUEUE", "gpu")


def _dag(**default_args):
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, task

    from airflow_carbon import CarbonOperator, tracked

    with DAG("queues", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), default_args=default_args) as dag:
        @task.carbon
        def train(lr: float) -> float:
            return lr

        train.override(task_id="single")(0.1)
        train.override(task_id="pinned", queue="cpu")(0.1)
        train.override(task_id="mapped").expand(lr=[0.1, 0.2])
        train.override(task_id="mapped_pinned", queue="cpu").expand(lr=[0.1])
        train.override(task_id="mapped_partial").partial().expand(lr=[0.1])
        CarbonOperator.partial(task_id="classic_mapped", python_callable=print).expand(op_args=[[1], [2]])
        CarbonOperator.partial(task_id="classic_pinned", queue="cpu", python_callable=print).expand(op_args=[[1]])
        tracked(BashOperator).partial(task_id="bash_mapped").expand(bash_command=["true"])
        PythonOperator.partial(task_id="untracked", python_callable=print).expand(op_args=[[1]])
    return {t.task_id: t.queue for t in dag.tasks}


def test_every_form_of_tracked_task_goes_to_the_gpu_queue(gpu_queue):
    queues = _dag()
    assert {k: queues[k] for k in ("single", "mapped", "mapped_partial", "classic_mapped", "bash_mapped")} == dict.fromkeys(
        ("single", "mapped", "mapped_partial", "classic_mapped", "bash_mapped"), "gpu")
    assert queues["pinned"] == queues["mapped_pinned"] == queues["classic_pinned"] == "cpu"
    assert queues["untracked"] == "default"


def test_a_queue_in_default_args_wins(gpu_queue):
    queues = _dag(queue="trainers")
    assert set(queues.values()) == {"trainers", "cpu"}


def test_without_gpu_queue_tracked_tasks_stay_on_the_default_queue():
    assert set(_dag().values()) == {"default", "cpu"}

