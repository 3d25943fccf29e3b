"""carbon_run_summary: the totals of each finished DAG run's tracked task instances, filled from XCom.

Revision ID: c4b0a1e2d001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c4b0a1e2d001"
down_revision = None
branch_labels = None
depends_on = None

SUMMED = ("emissions_g", "energy_kwh", "gpu_kwh", "cpu_kwh", "ram_kwh", "tries", "failed_tries")
COUNTED = ("task_instances", "carbon_aware_task_instances", "avoided_known_task_instances", "budgets_exceeded")


def upgrade() -> None:
    from airflow.utils.sqlalchemy import UtcDateTime

    op.create_table(
        "carbon_run_summary",
        sa.Column("dag_run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        *(sa.Column(name, sa.Float, nullable=False) for name in SUMMED),
        sa.Column("avoided_g", sa.Float, nullable=True),
        *(sa.Column(name, sa.Integer, nullable=False) for name in COUNTED),
        sa.Column("hardware", sa.JSON().with_variant(postgresql.JSONB, "postgresql"), nullable=True),
    )
    op.create_index("idx_carbon_run_summary_dag_time", "carbon_run_summary", ["dag_id", "timestamp"])
    from sqlalchemy.orm import Session

    from airflow_carbon.models.summary import rebuild

    session = Session(bind=op.get_bind())
    rebuild(session)  # the runs tracked before this table existed
    session.flush()


def downgrade() -> None:
    op.drop_index("idx_carbon_run_summary_dag_time", table_name="carbon_run_summary")
    op.drop_table("carbon_run_summary")
