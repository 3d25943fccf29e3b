"""carbon_task_summary, the provider's own table (airflow_carbon.models): created and migrated by `airflow db
migrate` through the provider's DB manager, filled by the run listener as dag.test()'s runs end, and by its
migration from the XComs already in a database that predates it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.airflow


def _rows(session, run_pk: int) -> list[tuple]:
    from sqlalchemy import select

    from airflow_carbon.models.summary import task_summary_table as t

    query = select(t.c.task_id, t.c.map_index, t.c.emissions_g, t.c.energy_kwh, t.c.tries, t.c.failed_tries, t.c.hardware)
    return sorted(tuple(r) for r in session.execute(query.where(t.c.dag_run_id == run_pk)))


def test_a_finished_run_has_one_row_per_tracked_task_instance_with_its_records_totals(airflow_dags, fake_gpu):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_helpers import run_dag

    fake_gpu("count=1; power=const:100")
    run, records = run_dag(airflow_dags, "carbon_mapped")
    with create_session() as session:
        run_pk = session.scalar(select(DagRun.id).where(DagRun.run_id == run.run_id))
        rows = _rows(session, run_pk)
    by_ti: dict[tuple, list[dict]] = {}
    for r in records:
        by_ti.setdefault((r["task"]["task_id"], r["task"]["map_index"]), []).append(r)
    assert [(task_id, map_index) for task_id, map_index, *_ in rows] == sorted(by_ti)
    for task_id, map_index, emissions_g, energy_kwh, tries, failed, hardware in rows:
        tis = by_ti[(task_id, map_index)]
        assert emissions_g == pytest.approx(sum(r["emissions_g"] for r in tis), rel=1e-12)
        assert energy_kwh == pytest.approx(sum(r["energy_kwh"] for r in tis), rel=1e-12)
        assert (tries, failed) == (len(tis), sum(r["status"] != "success" for r in tis))
        assert any(name.startswith("NVIDIA") for name in hardware)


def test_the_migration_creates_the_table_as_the_orm_declares_it_and_fills_it_from_xcom(airflow_dags, fake_gpu):
    """A database from before 0.4.0 (no table, no version): the migration's own script creates the table, the
    same as the ORM's, and fills it from the XComs already there."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import select, text

    from airflow_carbon.models.db_manager import CarbonDBManager
    from airflow_carbon.models.summary import metadata

    fake_gpu("count=1; power=const:100")
    run = airflow_dags.get_dag("carbon_mapped").test()
    with create_session() as session:
        run_pk = session.scalar(select(DagRun.id).where(DagRun.run_id == run.run_id))
        before = _rows(session, run_pk)
        session.execute(text("DROP TABLE carbon_task_summary"))
        session.execute(text("DROP TABLE alembic_version_carbon"))
    with create_session() as session:
        CarbonDBManager(session).upgradedb(use_migration_files=True)
    with create_session() as session:
        assert CarbonDBManager(session).check_migration()
        assert _rows(session, run_pk) == before and before
        ours = {t.name for t in metadata.tables.values()}
        def only_ours(name, kind, parents):
            return kind == "schema" or (name if kind == "table" else parents.get("table_name")) in ours


        diff = compare_metadata(MigrationContext.configure(session.connection(), opts={"include_name": only_ours}), metadata)
        assert diff == [], f"the migration and the ORM disagree: {diff}"
