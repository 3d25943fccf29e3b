"""Airflow layer: automatic tracking (opt-in) of tasks that nobody decorated.

With ``[carbon] auto_track = True``, every task matching ``auto_track_queues`` / ``auto_track_pools`` is
measured from ``on_task_instance_running`` to its success or failure. These hooks run in the task
process; calls made by the scheduler or the API server (with an ORM TaskInstance, not a runtime one)
are ignored, and so are tasks that measure themselves (``@task.carbon``, ``CarbonOperator``,
:func:`~airflow_carbon.operators.carbon.tracked`).
"""

from __future__ import annotations

import sys
from typing import Any

from airflow.listeners import hookimpl

_trackers: dict[str, Any] = {}  # runtime TaskInstance id -> TaskTracker, for the task running in this process


def _runtime_ti(task_instance: Any) -> bool:
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")  # loaded only in task processes
    return runner is not None and isinstance(task_instance, runner.RuntimeTaskInstance)


def _wanted(task: Any) -> bool:
    from airflow_carbon.settings import auto_track_filter

    enabled, queues, pools = auto_track_filter()
    if not enabled or getattr(task, "carbon_tracked", False):
        return False
    return (not queues or getattr(task, "queue", None) in queues) and (not pools or getattr(task, "pool", None) in pools)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    if not _runtime_ti(task_instance) or not _wanted(getattr(task_instance, "task", None)):
        return
    from airflow_carbon.settings import CarbonSettings
    from airflow_carbon.task_tracking import TaskTracker

    tracker = TaskTracker(CarbonSettings.from_config(), task_instance.get_template_context())
    tracker.start()
    _trackers[str(task_instance.id)] = tracker


def _finish(task_instance: Any, status: str) -> None:
    if not _runtime_ti(task_instance):
        return
    tracker = _trackers.pop(str(task_instance.id), None)
    if tracker is not None:
        tracker.finish(status)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _finish(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _finish(task_instance, "failed")


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _finish(task_instance, "skipped")
