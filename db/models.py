"""The tables: `jobs`, `items` and `job_counts` (per-job, per-state counters).

`job_counts` keeps `wgfpgan status` O(number of states) at any job size: every item transition updates the
two affected counter rows in the same transaction as the item row (see db/queries.py), so the counters can
never drift from the items table. Counter rows are always updated in sorted state order so two concurrent
transitions cannot deadlock each other on PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class ItemState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATES = (ItemState.QUEUED, ItemState.RUNNING)
TERMINAL_STATES = (ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED)


class JobState(enum.StrEnum):
    SUBMITTING = "submitting"  # the listing is still being streamed in
    ACTIVE = "active"  # some item queued or running
    FINISHED = "finished"  # every item terminal
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("source", "dest", name="uq_jobs_source_dest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    dest: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # upscale, weight, ext, ...
    state: Mapped[str] = mapped_column(String(16), default=JobState.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("job_id", "rel_key", name="uq_items_job_rel_key"),
        Index("ix_items_job_state_id", "job_id", "state", "id"),
        Index("ix_items_state_lease", "state", "lease_until"),
        # only the (few) queued items not yet sent to the broker: keeps dispatching O(new items)
        Index(
            "ix_items_undispatched",
            "job_id",
            "id",
            postgresql_where=text("state = 'queued' AND enqueued_at IS NULL"),
            sqlite_where=text("state = 'queued' AND enqueued_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    rel_key: Mapped[str] = mapped_column(Text)  # path relative to the job's source (and dest)
    source_uri: Mapped[str] = mapped_column(Text)
    output_uri: Mapped[str | None] = mapped_column(Text, default=None)  # set when succeeded
    state: Mapped[str] = mapped_column(String(16), default=ItemState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    faces: Mapped[int | None] = mapped_column(Integer, default=None)
    restore_seconds: Mapped[float | None] = mapped_column(Float, default=None)  # model time
    total_seconds: Mapped[float | None] = mapped_column(Float, default=None)  # claim -> recorded
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    input_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    model_version: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)  # last sent to the broker
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class JobCount(Base):
    __tablename__ = "job_counts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
