"""Airflow layer: ``CarbonBudgetOperator``: fail a DAG run whose tracked tasks together spent more than a budget.

It sums the run's records (every tracked task by default, every mapped instance, every try: failed ones drew
energy too) and fails, naming the largest contributors, when the grams or the kWh (before PUE) are over
budget. It runs whatever its upstream tasks' outcome (``trigger_rule="all_done"`` unless given), and fails
without retries: a retry would count the same records again. Per-task budgets that stop a try are the tracked
tasks' own ``co2_budget_g`` / ``energy_budget_kwh``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_carbon.core.budget import run_budget
from airflow_carbon.core.options import validate
from airflow_carbon.xcom import pull_records


class CarbonBudgetOperator(BaseOperator):
    """Fail the run when its tracked tasks together exceed ``co2_budget_g`` (gCO2e) or ``energy_budget_kwh``
    (kWh, before PUE); at least one is needed, each > 0 (a DAG import error otherwise, naming the value).

    :param task_ids: the tasks whose records count (default: every other task of the DAG).
    :return: (XCom) the budgets, what the run spent (``spent_g``, ``spent_kwh``), ``exceeded`` and the
        per-task-instance contributions, largest first.
    """

    ui_color = "#ffcdd2"

    def __init__(self, *, co2_budget_g: float | None = None, energy_budget_kwh: float | None = None,
                 task_ids: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.co2_budget_g = validate("co2_budget_g", co2_budget_g)
        self.energy_budget_kwh = validate("energy_budget_kwh", energy_budget_kwh)
        if self.co2_budget_g is None and self.energy_budget_kwh is None:
            raise ValueError(f"{self.task_id}: give co2_budget_g (gCO2e) or energy_budget_kwh (kWh), or both; got neither")
        self.task_ids = list(task_ids) if task_ids is not None else None

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        task_ids = self.task_ids if self.task_ids is not None else [t for t in self.dag.task_ids if t != self.task_id]
        records = pull_records(context, task_ids, [ti.run_id])
        result = run_budget(records, self.co2_budget_g, self.energy_budget_kwh)
        if result["exceeded"]:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"the run's carbon budget is exceeded: {result['message']}")
        self.log.info("Within budget: %s", result["message"])
        return result
