"""DAGs that act on the numbers (tests/test_airflow_carbon_aware.py runs them with dag.test()): a carbon-aware
start that waits for a greener minute of a simulated forecast, and budgets that warn or stop a Python task and
a tracked BashOperator whose child ignores SIGTERM."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task

from airflow_carbon import CarbonBudgetOperator, tracked
from carbon_testing.work import spin

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_aware_start():
    @task.carbon(location="DE", intensity_conn_id="electricitymaps_default", start_within=timedelta(minutes=4),
                 expected_duration=timedelta(minutes=1))
    def train() -> None:
        spin(1.0)

    train()


carbon_aware_start()


@dag(schedule=None, start_date=START, catchup=False)
def carbon_aware_default_duration():
    @task.carbon(location="DE", intensity_conn_id="electricitymaps_default", start_within=timedelta(hours=8))
    def train() -> None:
        spin(0.5)

    train()


carbon_aware_default_duration()


@dag(schedule=None, start_date=START, catchup=False)
def carbon_budget_python():
    @task.carbon(location="FR", energy_budget_kwh=2e-5, on_budget_exceeded="stop", retries=2,
                 retry_delay=timedelta(seconds=0))
    def train() -> str:
        for _ in range(600):  # 60 s unless stopped; a sleep is interrupted too
            time.sleep(0.1)
        return "finished"

    train()


carbon_budget_python()


@dag(schedule=None, start_date=START, catchup=False)
def carbon_budget_warn():
    @task.carbon(location="FR", co2_budget_g=1e-6)
    def train() -> str:
        spin(1.0)
        return "finished"

    train()


carbon_budget_warn()


# The child ignores SIGTERM and sleeps; its pid goes to $CARBON_TEST_PID_FILE (the test's environment, which
# the task process inherits), which the test checks is gone.
CHILD = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)")


@dag(schedule=None, start_date=START, catchup=False)
def carbon_budget_bash():
    tracked(BashOperator)(
        task_id="train",
        bash_command=f'{sys.executable} -c "{CHILD}" "$CARBON_TEST_PID_FILE" & wait',
        location="FR", energy_budget_kwh=2e-5, on_budget_exceeded="stop", budget_grace_s=2,
        retries=1, retry_delay=timedelta(seconds=0),
    )


carbon_budget_bash()


def _run_budget_dag(dag_id: str, co2_budget_g: float):
    @dag(dag_id=dag_id, schedule=None, start_date=START, catchup=False)
    def run_budget():
        @task.carbon(location="FR")
        def train(seconds: float) -> None:
            spin(seconds)

        train.expand(seconds=[0.2, 1.0]) >> CarbonBudgetOperator(task_id="budget", co2_budget_g=co2_budget_g)

    return run_budget()


_run_budget_dag("carbon_run_budget_exceeded", 1e-6)
_run_budget_dag("carbon_run_budget_within", 1e6)
