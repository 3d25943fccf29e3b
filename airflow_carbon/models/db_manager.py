"""Airflow layer: the provider's DB manager, which ``airflow db migrate`` runs (provider info ``db-managers``)
to create and migrate the provider's own tables with their own Alembic history (``airflow_carbon/migrations``,
version table ``alembic_version_carbon``), as Airflow's providers manage theirs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from airflow.utils.db_manager import BaseDBManager

from airflow_carbon.models.summary import metadata

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class CarbonDBManager(BaseDBManager):
    """Creates ``carbon_run_summary`` (and fills it from the XComs already there), then keeps it migrated."""

    metadata = metadata
    version_table_name = "alembic_version_carbon"
    migration_dir = _MIGRATIONS.as_posix()
    alembic_file = (_MIGRATIONS / "alembic.ini").as_posix()
    supports_table_dropping = True
    revision_heads_map: ClassVar[dict[str, str]] = {"0.4.0": "c4b0a1e2d001"}

    def create_db_from_orm(self) -> None:
        """A new database (or one without the table yet): the table from the ORM, filled from the XComs there."""
        from airflow_carbon.models.summary import rebuild

        super().create_db_from_orm()
        rebuild(self.session)
        self.session.commit()
