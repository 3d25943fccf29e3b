"""carbon_run_summary, the provider's own table (airflow_carbon.models): created and migrated by `airflow db
migrate` through the provider's DB manager, filled by the run listener as dag.test()'s runs end, and by its
migration from the XComs already in a database that predates it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.airflow


def _row(session, run_pk: int) -> dict | None:
    from sqlalchemy import select

    from airflow_carbon.models.summary import run_summary_table as t

    row = session.execute(select(t).where(t.c.dag_run_id == run_pk)).mappings().one_or_none()
    return None if row is None else dict(row)


def _run_pk(session, run_id: str) -> int:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(select(DagRun.id).where(DagRun.run_id == run_id))


def test_a_finished_run_has_one_row_with_its_records_totals(airflow_dags, fake_gpu):
    from airflow.utils.session import create_session

    from airflow_helpers import run_dag

    fake_gpu("count=1; power=const:100")
    run, records = run_dag(airflow_dags, "carbon_mapped")
    with create_session() as session:
        row = _row(session, _run_pk(session, run.run_id))
    assert row["dag_id"] == "carbon_mapped" and row["run_id"] == run.run_id
    assert row["emissions_g"] == pytest.approx(sum(r["emissions_g"] for r in records), rel=1e-12)
    assert row["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in records), rel=1e-12)
    assert row["gpu_kwh"] == pytest.approx(sum(r["components"]["gpu"]["energy_kwh"] for r in records), rel=1e-12)
    assert (row["tries"], row["failed_tries"]) == (len(records), sum(r["status"] != "success" for r in records))
    assert row["task_instances"] == len({(r["task"]["task_id"], r["task"]["map_index"]) for r in records})
    assert row["avoided_g"] is None and row["carbon_aware_task_instances"] == 0 and row["budgets_exceeded"] == 0
    assert any(name.startswith("NVIDIA") and n == 1 for name, n in row["hardware"].items())


def test_the_migration_creates_the_table_as_the_orm_declares_it_and_fills_it_from_xcom(airflow_dags, fake_gpu):
    """A database from before 0.4.0 (no table, no version): the migration's own script creates the table, the
    same as the ORM's, and fills it from the XComs already there."""
    from airflow.utils.session import create_session
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import text

    from airflow_carbon.models.db_manager import CarbonDBManager
    from airflow_carbon.models.summary import metadata

    fake_gpu("count=1; power=const:100")
    run = airflow_dags.get_dag("carbon_mapped").test()
    with create_session() as session:
        run_pk = _run_pk(session, run.run_id)
        before = _row(session, run_pk)
        session.execute(text("DROP TABLE carbon_run_summary"))
        session.execute(text("DROP TABLE alembic_version_carbon"))
    with create_session() as session:
        CarbonDBManager(session).upgradedb(use_migration_files=True)
    with create_session() as session:
        assert CarbonDBManager(session).check_migration()
        after = _row(session, run_pk)
        assert before is not None and after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        ours = {t.name for t in metadata.tables.values()}

        def only_ours(name, kind, parents):
            return kind == "schema" or (name if kind == "table" else parents.get("table_name")) in ours

        diff = compare_metadata(MigrationContext.configure(session.connection(), opts={"include_name": only_ours}), metadata)
        assert diff == [], f"the migration and the ORM disagree: {diff}"
