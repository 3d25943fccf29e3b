"""Alembic environment of airflow-carbon's own tables: Airflow's metadata database, our version table."""

from __future__ import annotations

from alembic import context

from airflow_carbon.models.summary import metadata

VERSION_TABLE = "alembic_version_carbon"


def run_migrations_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    from airflow import settings

    connection = context.config.attributes.get("connection")
    if connection is None:
        with settings.engine.connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
