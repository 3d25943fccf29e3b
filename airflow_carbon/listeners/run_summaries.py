"""Airflow layer: keeps ``carbon_run_summary`` (:mod:`airflow_carbon.models.summary`) in step with DAG runs.

Airflow calls these hooks in the scheduler while it changes a run's state, inside its own transaction (and in
``dag.test()``, after it): a run that ends gets its row, a run that starts again (cleared) loses it. Our
statements run in a savepoint of the scheduler's transaction, so that a failure here is logged and rolled back
alone, never the scheduler's work; without one, in a transaction of their own.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def _in_savepoint(dag_run: Any, action: str) -> None:
    from sqlalchemy.orm import object_session

    if getattr(dag_run, "id", None) is None:
        return
    try:
        session = object_session(dag_run)
        if session is None:  # a run no session holds (dag.test()): a transaction of our own
            from airflow.utils.session import create_session

            with create_session() as own:
                _apply(own, dag_run.id, action)
        else:
            with session.begin_nested():
                _apply(session, dag_run.id, action)
    except Exception as exc:  # the table missing (airflow db migrate not run), a database error: the UI reads XComs
        log.warning("airflow-carbon: could not %s the summary of DAG run %s (%s: %s); the UI reads its XComs, and "
                    "`airflow-carbon summaries rebuild` refills the table", action, getattr(dag_run, "run_id", "?"),
                    type(exc).__name__, exc)


def _apply(session: Any, dag_run_id: int, action: str) -> None:
    from airflow_carbon.models import summary

    if action == "store":
        summary.store_run(session, dag_run_id)
    else:
        summary.forget_run(session, dag_run_id)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    _in_savepoint(dag_run, "forget")


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _in_savepoint(dag_run, "store")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _in_savepoint(dag_run, "store")
