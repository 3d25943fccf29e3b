"""Airflow layer: the records of a DAG run, read from the metadata database's XComs.

``python -m airflow_carbon.run_records DAG_ID [RUN_ID]`` prints the per-task table of a run (the latest
by default): every tracked task, every mapped instance, every try.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from airflow_carbon.record import RecordError, validate_record
from airflow_carbon.report import records_table
from airflow_carbon.task_tracking import XCOM_KEY


def latest_run_id(dag_id: str, session: Any) -> str | None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(select(DagRun.run_id).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1))


def run_records(dag_id: str, run_id: str, session: Any, *, task_id: str | None = None, map_index: int | None = None,
                rejected: list[str] | None = None) -> list[dict[str, Any]]:
    """Every valid record of the run (per tracked task instance, the list its last try pushed: all its
    tries), or of one task (``task_id``, ``map_index``). Anything else under the records' XCom key is left
    out and described in ``rejected``."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == XCOM_KEY)
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    records = []
    for xcom in session.scalars(query):
        where = xcom.task_id + (f"[{xcom.map_index}]" if xcom.map_index >= 0 else "")
        records.extend(_valid(XComModel.deserialize_value(xcom), where, rejected if rejected is not None else []))
    return records


def _valid(value: Any, where: str, rejected: list[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        rejected.append(f"{where}: XCom {XCOM_KEY!r} is not a list of records")
        return []
    valid = []
    for i, record in enumerate(value):
        try:
            validate_record(record)
            if "task" not in record:
                raise RecordError("it has no task identity")
        except (RecordError, TypeError) as exc:
            rejected.append(f"{where}: item {i} of XCom {XCOM_KEY!r} is not an airflow-carbon record ({exc})")
            continue
        valid.append(record)
    return valid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_carbon.run_records", description=__doc__)
    parser.add_argument("dag_id")
    parser.add_argument("run_id", nargs="?", help="default: the DAG's latest run")
    args = parser.parse_args(argv)
    from airflow.utils.session import create_session

    with create_session() as session:
        run_id = args.run_id or latest_run_id(args.dag_id, session)
        if run_id is None:
            print(f"no run of DAG {args.dag_id!r} in the metadata database", file=sys.stderr)
            return 1
        records = run_records(args.dag_id, run_id, session)
    if not records:
        print(f"DAG {args.dag_id!r} run {run_id!r} has no airflow-carbon records: decorate a task with @task.carbon", file=sys.stderr)
        return 1
    print(f"DAG {args.dag_id}, run {run_id}")
    print(records_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
