"""Airflow layer: keeps ``carbon_run_summary`` (:mod:`airflow_carbon.models.summary`) in step with DAG runs.

Airflow calls these hooks while it changes a run's state: a run that ends gets its row, a run that starts again
(cleared) loses it. In the scheduler they run inside its transaction, which must not be committed by anyone else
(its HA locks): the change is applied once that transaction commits, in a session and transaction of our own
(none at all if it rolls back). Where no session holds the run (``dag.test()``), it is applied at once. A failure
is logged, never raised: the run's totals are then missing from the overview and DAG pages until
``airflow-carbon summaries rebuild`` (its own pages read its XComs, as always).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

_PENDING = "airflow_carbon.run_summaries"
"""Key, in a scheduler session's ``info``, of the changes waiting for its commit: (run id, run_id, action)."""

_LISTENING = "airflow_carbon.run_summaries.listening"
"""Key, in a session's ``info``: our commit and rollback listeners are on it."""


def _schedule(dag_run: Any, action: str) -> None:
    from sqlalchemy.orm import object_session

    run_pk = getattr(dag_run, "id", None)
    if run_pk is None:
        return
    change = (run_pk, getattr(dag_run, "run_id", "?"), action)
    session = object_session(dag_run)
    if session is None:  # a run no session holds (dag.test()): apply it now
        from airflow.utils.session import create_session

        _apply_all(create_session, [change])
        return
    if not session.info.get(_LISTENING):  # once per session (the scheduler keeps its own for its life)
        from sqlalchemy import event

        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_LISTENING] = True
    session.info.setdefault(_PENDING, []).append(change)


def _after_commit(session: Any) -> None:
    changes = session.info.pop(_PENDING, [])
    if changes:
        bind = session.get_bind()
        _apply_all(lambda: _separate(bind), changes)


@contextlib.contextmanager
def _separate(bind: Any) -> Iterator[Any]:
    """A session and transaction of our own on ``bind``: never the scheduler's scoped session."""
    from sqlalchemy.orm import Session

    with Session(bind=bind) as session, session.begin():
        yield session


def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING, None)  # the state change did not happen


def _apply_all(open_session: Any, changes: list[tuple[int, str, str]]) -> None:
    from airflow_carbon.models import summary

    for run_pk, run_id, action in changes:
        try:
            with open_session() as session:
                if action == "store":
                    summary.store_run(session, run_pk)
                else:
                    summary.forget_run(session, run_pk)
        except Exception as exc:  # the table missing (airflow db migrate not run), a database error
            log.warning("airflow-carbon: could not %s the summary of DAG run %s (%s: %s); the overview and DAG pages "
                        "miss it until `airflow-carbon summaries rebuild`", action, run_id, type(exc).__name__, exc)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    _schedule(dag_run, "forget")


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _schedule(dag_run, "store")


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _schedule(dag_run, "store")
