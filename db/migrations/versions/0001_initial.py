"""Initial schema: jobs, items, job_counts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite only autoincrements INTEGER
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dest", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("source", "dest", name="uq_jobs_source_dest"),
    )
    op.create_table(
        "items",
        sa.Column("id", BIGINT_ID, primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rel_key", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("output_uri", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("faces", sa.Integer(), nullable=True),
        sa.Column("restore_seconds", sa.Float(), nullable=True),
        sa.Column("total_seconds", sa.Float(), nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("input_sha256", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(200), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("enqueued_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("job_id", "rel_key", name="uq_items_job_rel_key"),
    )
    op.create_index("ix_items_job_state_id", "items", ["job_id", "state", "id"])
    op.create_index("ix_items_state_lease", "items", ["state", "lease_until"])
    undispatched = sa.text("state = 'queued' AND enqueued_at IS NULL")
    op.create_index(
        "ix_items_undispatched",
        "items",
        ["job_id", "id"],
        postgresql_where=undispatched,
        sqlite_where=undispatched,
    )
    op.create_table(
        "job_counts",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_counts")
    op.drop_index("ix_items_undispatched", table_name="items")
    op.drop_index("ix_items_state_lease", table_name="items")
    op.drop_index("ix_items_job_state_id", table_name="items")
    op.drop_table("items")
    op.drop_table("jobs")
