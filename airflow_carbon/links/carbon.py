"""Airflow layer: the "Carbon emissions" extra link of tracked tasks, to their tab in the Airflow UI.

A global extra link (the plugin's ``global_operator_extra_links``), resolved by the API server when a task
instance's links are asked for: an operator's own extra link would cost every try one more execution-API round
trip (Airflow pushes each one as an XCom when the try ends). It links the task instances that have records
(tracked by the decorator, an operator or the listener) and gives None, which Airflow's UI leaves out, for the
others."""

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

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str | None:
        if not _has_records(ti_key):
            return None
        return task_instance_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)


def _has_records(ti_key: TaskInstanceKey) -> bool:
    """Whether the task instance pushed records (one indexed read of the metadata DB, in the API server)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_carbon.xcom import XCOM_KEY

    query = select(XComModel.key).where(
        XComModel.dag_id == ti_key.dag_id, XComModel.run_id == ti_key.run_id, XComModel.task_id == ti_key.task_id,
        XComModel.map_index == ti_key.map_index, XComModel.key == XCOM_KEY,
    ).limit(1)
    with create_session() as session:
        return session.scalar(query) is not None
