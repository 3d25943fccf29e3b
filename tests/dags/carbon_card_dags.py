"""DAGs for the model-card tests (tests/test_model_card.py): train, then publish."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from airflow_carbon import PublishModelCardOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _trainers():
    @task.carbon(location="CA-QC", retries=1, retry_delay=timedelta(seconds=0))
    def train(lr: float, ti=None) -> float:
        if lr == 0.1 and ti.try_number == 1:
            raise RuntimeError("diverged")
        return lr

    @task
    def untracked() -> int:
        return 1

    return [train.expand(lr=[0.1, 0.01]), untracked()]


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_local():
    _trainers() >> PublishModelCardOperator(
        task_id="publish", local_dir="{{ dag_run.conf['dir'] }}", training_type="fine-tuning", export_records=True,
    )


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_hub():
    _trainers() >> PublishModelCardOperator(
        task_id="publish", repo_id="{{ dag_run.conf['repo'] }}", training_type="pre-training", hf_conn_id="hf_test",
        on_existing=os.environ.get("CARBON_TEST_ON_EXISTING", "fail"),
    )


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_hub_pr():
    _trainers() >> PublishModelCardOperator(
        task_id="publish", repo_id="{{ dag_run.conf['repo'] }}", training_type="fine-tuning", hf_conn_id="hf_test",
        create_pr=True, commit_message="Carbon footprint of the fine-tuning run",
    )


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_nothing():
    @task
    def untracked() -> int:
        return 1

    untracked() >> PublishModelCardOperator(task_id="publish", local_dir="{{ dag_run.conf['dir'] }}", training_type="fine-tuning")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_hub_timeout():
    _trainers() >> PublishModelCardOperator(
        task_id="publish", repo_id="{{ dag_run.conf['repo'] }}", training_type="fine-tuning", hf_conn_id="hf_test", hub_timeout_s=1,
    )


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_bad_record():
    @task
    def forged(ti=None) -> None:
        identity = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": -1, "try_number": 1}
        ti.xcom_push(key="carbon_records", value=[{"schema_version": 1, "task": identity, "emissions_g": -5}])

    forged() >> PublishModelCardOperator(task_id="publish", local_dir="{{ dag_run.conf['dir'] }}", training_type="fine-tuning")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_skip():
    @task
    def untracked() -> int:
        return 1

    untracked() >> PublishModelCardOperator(task_id="publish", local_dir="{{ dag_run.conf['dir'] }}", training_type="fine-tuning", if_no_records="skip")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_card_sweep():
    _trainers() >> PublishModelCardOperator(
        task_id="publish", local_dir="{{ dag_run.conf['dir'] }}", training_type="fine-tuning",
        include_run_ids="{{ dag_run.conf.get('earlier_runs', '') }}",
    )


carbon_card_local()
carbon_card_sweep()
carbon_card_hub_timeout()
carbon_card_bad_record()
carbon_card_skip()
carbon_card_hub()
carbon_card_hub_pr()
carbon_card_nothing()
