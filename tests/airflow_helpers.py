"""Reading what a real Airflow run left in the metadata DB, for the Airflow-layer tests."""

from __future__ import annotations

from typing import Any


def xcom_value(run_id: str, task_id: str, key: str = "return_value", map_index: int | None = None) -> Any:
    """The deserialised XCom ``key`` that ``task_id`` pushed in ``run_id``, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(XComModel).where(XComModel.run_id == run_id, XComModel.task_id == task_id, XComModel.key == key)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    with create_session() as session:
        xcom = session.scalars(query).one_or_none()
        return None if xcom is None else XComModel.deserialize_value(xcom)


def run_dag(airflow_dags: Any, dag_id: str) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``dag_id`` with dag.test() and read back every record of the run, each checked against the schema."""
    from airflow.utils.session import create_session

    from airflow_carbon import validate_record
    from airflow_carbon.xcom import run_records

    run = airflow_dags.get_dag(dag_id).test()
    with create_session() as session:
        records = run_records(dag_id, run.run_id, session)
    for record in records:
        validate_record(record)
    return run, records
