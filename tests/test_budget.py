"""Budgets in the core (airflow_carbon/core/budget.py), without Airflow: what crosses a budget, the record's
``budget``, and a stop that raises in the measured thread and ends every child process, one that ignores
SIGTERM included."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from airflow_carbon.core.budget import STOP_SIGNAL, Budget, BudgetGuard, CarbonBudgetExceeded
from airflow_carbon.core.processes import descendants

pytestmark = pytest.mark.unit


def test_a_budget_counts_the_earlier_tries_and_names_what_was_crossed():
    budget = Budget(co2_g=10.0, energy_kwh=0.5, action="warn", spent_before_g=8.0, spent_before_kwh=0.1)
    assert budget.exceeded(1.9, 0.39) is None
    assert budget.exceeded(2.5, 0.1) == "10.5 gCO2e spent of a co2_budget_g of 10"
    assert budget.exceeded(2.5, 0.5) == "10.5 gCO2e spent of a co2_budget_g of 10; 0.6 kWh spent of an energy_budget_kwh of 0.5"
    assert budget.entry(2.5, 0.1) == {"co2_g": 10.0, "energy_kwh": 0.5, "spent_g": 10.5, "spent_kwh": pytest.approx(0.2),
                                      "exceeded": True, "action": "warn", "on_exceeded": "warn"}
    assert budget.entry(1.0, 0.1)["action"] == "none"


@pytest.mark.parametrize("kwargs, message", [
    ({"co2_g": None, "energy_kwh": None}, "a budget needs co2_g or energy_kwh"),
    ({"co2_g": 0.0, "energy_kwh": None}, "co2_g=0.0 is invalid; expected a number > 0"),
    ({"co2_g": None, "energy_kwh": -1.0}, "energy_kwh=-1.0 is invalid; expected a number > 0"),
    ({"co2_g": 1.0, "energy_kwh": None, "action": "explode"}, "action='explode' is invalid; expected 'warn' or 'stop'"),
])
def test_a_bad_budget_is_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


def test_a_stop_raises_in_the_armed_thread_even_in_a_sleep_and_restores_the_handler():
    before = signal.getsignal(STOP_SIGNAL)
    guard = BudgetGuard(Budget(co2_g=1.0, energy_kwh=None, action="stop", spent_before_g=0.4, grace_s=0))
    guard.arm()
    guard(0.0, 0.5)  # 0.9 g of 1 g: within
    assert guard.message is None and not guard.stopped
    started = time.monotonic()
    with pytest.raises(CarbonBudgetExceeded, match=r"1\.1 gCO2e spent of a co2_budget_g of 1"):
        guard(0.0, 0.7)
        time.sleep(30)  # interrupted by the stop
    assert time.monotonic() - started < 5
    guard.disarm()
    assert guard.stopped and signal.getsignal(STOP_SIGNAL) == before


def test_a_warn_budget_warns_once_and_raises_nothing():
    guard = BudgetGuard(Budget(co2_g=None, energy_kwh=1e-6, action="warn"))
    guard.arm()
    with pytest.warns(UserWarning, match="the task's budget is exceeded"):
        guard(2e-6, 0.0)
    guard(3e-6, 0.0)  # once
    guard.disarm()
    assert guard.message and not guard.stopped


def test_the_stop_terminates_children_then_kills_the_ones_that_ignore_sigterm():
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                 "print('ready', flush=True); time.sleep(300)"], stdout=subprocess.PIPE, text=True)
    polite = subprocess.Popen([sys.executable, "-c", "print('ready', flush=True); import time; time.sleep(300)"],
                              stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline() == polite.stdout.readline() == "ready\n"
    assert {stubborn.pid, polite.pid} <= set(descendants(__import__("os").getpid()))
    guard = BudgetGuard(Budget(co2_g=None, energy_kwh=1e-9, action="stop", grace_s=1.0))
    guard.arm()
    started = time.monotonic()
    with pytest.raises(CarbonBudgetExceeded):
        guard(1e-6, 0.0)
        time.sleep(30)
    assert polite.wait(timeout=5) == -signal.SIGTERM
    guard.disarm()  # waits for the SIGKILL round
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert 0.9 < time.monotonic() - started < 6


def test_the_run_budget_message_names_the_largest_contributors_with_their_shares():
    from airflow_carbon.core.budget import run_budget

    def record(map_index, g, kwh, try_number=1):
        return {"task": {"task_id": "train", "map_index": map_index, "try_number": try_number, "run_id": "r", "dag_id": "d"},
                "emissions_g": g, "energy_kwh": kwh}

    records = [record(0, 10.0, 0.1), record(1, 60.0, 0.5), record(1, 20.0, 0.2, try_number=2), record(2, 10.0, 0.1)]
    result = run_budget(records, 50.0, None)
    assert result["exceeded"] and result["spent_g"] == 100.0
    assert result["message"] == ("100 gCO2e spent of a co2_budget_g of 50, over 4 tries of 3 task instances; the largest "
                                 "contributors: train[1] 80 g (80 %), train[0] 10 g (10 %), train[2] 10 g (10 %)")
    assert not run_budget(records, None, 1.0)["exceeded"]
    assert "0.9 kWh spent of an energy_budget_kwh of 0.5" in run_budget(records, None, 0.5)["message"]
