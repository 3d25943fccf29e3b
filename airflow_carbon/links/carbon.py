"""Airflow layer: the "Carbon emissions" extra link of tracked tasks, to their tab in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey


def task_instance_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The Airflow UI route of one task instance's "Carbon" tab (the UI plugin's task instance view)."""
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return f"{path}{'' if map_index < 0 else f'/mapped/{map_index}'}/plugin/carbon-task"


class CarbonEmissionsLink(BaseOperatorLink):
    """Opens the tracked task instance's energy and emissions in the Airflow UI."""

    name = "Carbon emissions"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return task_instance_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
