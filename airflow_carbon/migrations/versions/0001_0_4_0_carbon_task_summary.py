"""carbon_task_summary: the summaries of the tracked task instances of finished DAG runs, filled from XCom.

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

NUMBERS = ("emissions_g", "energy_kwh", "gpu_kwh", "cpu_kwh", "ram_kwh", "tries", "failed_tries", "avoided_g", "waited_s")


def upgrade() -> None:
    from airflow.utils.sqlalchemy import UtcDateTime

    op.create_table(
        "carbon_task_summary",
        sa.Column("dag_run_id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(250), primary_key=True),
        sa.Column("map_index", sa.Integer, primary_key=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        *(sa.Column(name, sa.Float, nullable=name in ("avoided_g", "waited_s")) for name in NUMBERS),
        sa.Column("budget_exceeded", sa.Boolean, nullable=True),
        sa.Column("hardware", sa.JSON().with_variant(postgresql.JSONB, "postgresql"), nullable=True),
    )
    op.create_index("idx_carbon_task_summary_dag_time", "carbon_task_summary", ["dag_id", "timestamp"])
    from sqlalchemy.orm import Session

    from airflow_carbon.models.summary import rebuild

    session = Session(bind=op.get_bind())
    rebuild(session)  # the summaries of the runs tracked before this table existed
    session.flush()


def downgrade() -> None:
    op.drop_index("idx_carbon_task_summary_dag_time", table_name="carbon_task_summary")
    op.drop_table("carbon_task_summary")
