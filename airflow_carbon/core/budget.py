"""Carbon and energy budgets of a task: what its tries have spent, whether the running try crossed a budget,
and stopping the try's work when the budget says ``stop``. No Airflow.

A budget covers every try of a task: ``spent_before_g`` / ``spent_before_kwh`` are the earlier tries'. The
meter reports the running try's spending a few times a second (``EnergyMeter(on_progress=guard)``); the first
report past a budget trips the :class:`BudgetGuard`:

- ``warn``: one warning (the task log and the record);
- ``stop``: :class:`CarbonBudgetExceeded` is raised in the thread that armed the guard (the task's main thread:
  through ``SIGUSR1``, which also interrupts a blocking ``sleep`` or read; through
  ``PyThreadState_SetAsyncExc`` from any other thread), and every child process of this process gets
  ``SIGTERM``, then ``SIGKILL`` after ``grace_s`` seconds, the grandchildren too, so that nothing is left
  running. :meth:`BudgetGuard.disarm` waits for that to finish.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from airflow_carbon.core.processes import alive, descendants, signal_all
from airflow_carbon.core.record import Record, task_label

__all__ = ["STOP_SIGNAL", "Budget", "BudgetGuard", "CarbonBudgetExceeded", "run_budget"]

TOP_CONTRIBUTORS = 3
"""How many of the largest contributors a run budget's message names."""

STOP_SIGNAL = signal.SIGUSR1
"""The signal that carries a budget stop to the task's main thread (its previous handler is restored after)."""


class CarbonBudgetExceeded(Exception):
    """A task crossed its carbon or energy budget with ``on_budget_exceeded="stop"``."""


@dataclass(frozen=True)
class Budget:
    """A task's budget: ``co2_g`` (gCO2e) and/or ``energy_kwh`` (kWh, before PUE), over all its tries;
    ``spent_before_*`` is what its earlier tries spent; ``action`` is ``warn`` or ``stop``."""

    co2_g: float | None
    energy_kwh: float | None
    action: str = "warn"
    spent_before_g: float = 0.0
    spent_before_kwh: float = 0.0
    grace_s: float = 10.0

    def __post_init__(self) -> None:
        if self.co2_g is None and self.energy_kwh is None:
            raise ValueError("a budget needs co2_g or energy_kwh")
        for name in ("co2_g", "energy_kwh"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value!r} is invalid; expected a number > 0")
        if self.action not in ("warn", "stop"):
            raise ValueError(f"action={self.action!r} is invalid; expected 'warn' or 'stop'")

    def exceeded(self, try_g: float, try_kwh: float) -> str | None:
        """Why the task is over budget once this try spent ``try_g`` g and ``try_kwh`` kWh; None while within."""
        spent_g, spent_kwh = self.spent_before_g + try_g, self.spent_before_kwh + try_kwh
        over = []
        if self.co2_g is not None and spent_g > self.co2_g:
            over.append(f"{spent_g:.4g} gCO2e spent of a co2_budget_g of {self.co2_g:g}")
        if self.energy_kwh is not None and spent_kwh > self.energy_kwh:
            over.append(f"{spent_kwh:.4g} kWh spent of an energy_budget_kwh of {self.energy_kwh:g}")
        return "; ".join(over) or None

    def entry(self, try_g: float, try_kwh: float, *, stopped: bool = False) -> dict[str, Any]:
        """The record's ``budget``: the budgets, what every try so far spent (g, kWh), whether it is exceeded
        and what was done (``warn``, ``stop``: the try was stopped, ``none``: within budget)."""
        exceeded = self.exceeded(try_g, try_kwh) is not None
        return {
            "co2_g": self.co2_g,
            "energy_kwh": self.energy_kwh,
            "spent_g": self.spent_before_g + try_g,
            "spent_kwh": self.spent_before_kwh + try_kwh,
            "exceeded": exceeded,
            "action": ("stop" if stopped else "warn") if exceeded else "none",
            "on_exceeded": self.action,
        }


class BudgetGuard:
    """Watches one try's spending against ``budget`` (call it with the try's kWh and g so far, from any
    thread) and acts once when it is crossed. :meth:`arm` in the thread to stop, :meth:`disarm` after the work."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.message: str | None = None
        """Why the budget was crossed, once it was."""
        self.stopped = False
        """The try's work was stopped (``action="stop"``)."""
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._previous_handler: Any = None
        self._handler_installed = False
        self._reaper: threading.Thread | None = None
        self._raised = False

    # -- in the task's thread ----------------------------------------------------------------------
    def arm(self) -> None:
        """Watch from now; a stop will raise in the calling thread."""
        self._thread_id = threading.get_ident()
        if self.budget.action == "stop" and threading.current_thread() is threading.main_thread():
            try:
                self._previous_handler = signal.signal(STOP_SIGNAL, self._on_signal)
                self._handler_installed = True
            except (ValueError, OSError):  # pragma: no cover - not the main interpreter thread
                self._handler_installed = False

    def disarm(self) -> None:
        """Stop watching: wait for a stop's SIGKILL round (at most ``grace_s`` s), restore the signal handler."""
        with self._lock:
            self._thread_id = None
        if self._reaper is not None:
            self._reaper.join(self.budget.grace_s + 5.0)
        if self._handler_installed:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(STOP_SIGNAL, self._previous_handler)
            self._handler_installed = False

    def check_before_start(self) -> None:
        """Raise :class:`CarbonBudgetExceeded` when the earlier tries alone are over a ``stop`` budget."""
        message = self.budget.exceeded(0.0, 0.0)
        if message and self.budget.action == "stop":
            self.message, self.stopped = message, True
            raise CarbonBudgetExceeded(f"the task's budget was spent by its earlier tries: {message}")

    # -- from the meter's sampling thread --------------------------------------------------------------
    def __call__(self, energy_kwh: float, emissions_g: float) -> None:
        """The running try has spent ``energy_kwh`` kWh and ``emissions_g`` g so far."""
        if self.message is not None:
            return
        message = self.budget.exceeded(emissions_g, energy_kwh)
        if message is None:
            return
        with self._lock:
            if self.message is not None or self._thread_id is None:
                return
            self.message = message
            if self.budget.action == "warn":
                warnings.warn(f"airflow-carbon: the task's budget is exceeded: {message}", UserWarning, stacklevel=2)
                return
            self.stopped = True
            self._stop()

    # -- internals ---------------------------------------------------------------------------------
    def _stop(self) -> None:
        children = descendants(os.getpid())
        signal_all(children, signal.SIGTERM)
        self._reaper = threading.Thread(target=self._reap, args=(children,), name="airflow-carbon-budget", daemon=True)
        self._reaper.start()
        self._raise_in_task_thread()

    def _raise_in_task_thread(self) -> None:
        if self._handler_installed:
            signal.pthread_kill(threading.main_thread().ident, STOP_SIGNAL)  # type: ignore[arg-type]
        elif self._thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), ctypes.py_object(CarbonBudgetExceeded))

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopped and not self._raised and self._thread_id is not None:
            self._raised = True
            raise CarbonBudgetExceeded(f"the task's budget is exceeded: {self.message}")
        previous = self._previous_handler
        if callable(previous):  # not ours: whoever handled the signal before us
            previous(signum, frame)

    def _reap(self, children: dict[int, int]) -> None:
        """SIGKILL, after the grace period, what is left of ``children`` and any process started since."""
        deadline = time.monotonic() + self.budget.grace_s
        while time.monotonic() < deadline:
            left = {**children, **descendants(os.getpid())}
            if not any(alive(pid, start) for pid, start in left.items()):
                return
            time.sleep(0.1)
        signal_all({**children, **descendants(os.getpid())}, signal.SIGKILL)


def run_budget(records: list[Record], co2_budget_g: float | None, energy_budget_kwh: float | None) -> dict[str, Any]:
    """The run's spending (g, kWh) against its budgets, per task instance largest first, and a message."""
    budget = Budget(co2_budget_g, energy_budget_kwh)
    by_task: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for record in records:
        spent = by_task[task_label(record["task"])]
        spent[0] += record["emissions_g"]
        spent[1] += record["energy_kwh"]
    spent_g = sum(g for g, _ in by_task.values())
    spent_kwh = sum(kwh for _, kwh in by_task.values())
    key = 0 if co2_budget_g is not None else 1
    ranked = sorted(by_task.items(), key=lambda item: -item[1][key])
    over = budget.exceeded(spent_g, spent_kwh)
    total = spent_g if key == 0 else spent_kwh
    unit = "g" if key == 0 else "kWh"
    largest = ", ".join(
        f"{label} {spent[key]:.4g} {unit} ({100 * spent[key] / total:.0f} %)" if total > 0 else f"{label} 0 {unit}"
        for label, spent in ranked[:TOP_CONTRIBUTORS]
    )
    tries = len(records)
    if over:
        message = f"{over}, over {tries} tries of {len(by_task)} task instances; the largest contributors: {largest or 'none'}"
    else:
        message = f"{spent_g:.4g} gCO2e and {spent_kwh:.4g} kWh over {tries} tries of {len(by_task)} task instances"
    return {
        "co2_budget_g": co2_budget_g,
        "energy_budget_kwh": energy_budget_kwh,
        "spent_g": spent_g,
        "spent_kwh": spent_kwh,
        "exceeded": over is not None,
        "message": message,
        "contributions": [{"task": label, "emissions_g": g, "energy_kwh": kwh} for label, (g, kwh) in ranked],
    }
