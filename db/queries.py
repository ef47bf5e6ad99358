"""The queries everyone shares. Each takes a Session inside a transaction (run them with
`Database.run(fn, ...)`), and every item transition is a single UPDATE guarded by the expected current
state (compare-and-set) whose row count drives the per-job counters in the same transaction.

Transitions (DESIGN.md): queued -> running -> succeeded | failed; queued -> cancelled; failed/cancelled ->
queued on retry; running -> queued when a lease expires or a worker hands the item back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATES, TERMINAL_STATES, Item, ItemState, Job, JobCount, JobState, utcnow

# ---------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class NewItem:
    rel_key: str
    source_uri: str
    error_code: str | None = None  # set -> the item is born failed (e.g. an unsafe key)
    error_message: str | None = None


@dataclass(frozen=True)
class ClaimedItem:
    id: int
    job_id: int
    rel_key: str
    source_uri: str
    attempt: int  # the claim token: later transitions of this claim are guarded by it


def get_or_create_job(
    session: Session, *, name: str, source: str, dest: str, options: dict[str, Any]
) -> tuple[Job, bool]:
    """The job for (source, dest), created if new. A re-submission reopens it (state `submitting`)."""
    job = session.scalars(select(Job).where(Job.source == source, Job.dest == dest).with_for_update()).first()
    if job is not None:
        job.state = JobState.SUBMITTING
        job.finished_at = None
        return job, False
    job = Job(name=name, source=source, dest=dest, options=options, state=JobState.SUBMITTING)
    session.add(job)
    session.flush()
    session.execute(insert(JobCount), [{"job_id": job.id, "state": s.value, "n": 0} for s in ItemState])
    return job, True


def find_job(session: Session, *, source: str, dest: str) -> Job | None:
    return session.scalars(select(Job).where(Job.source == source, Job.dest == dest)).first()


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def list_jobs(session: Session, limit: int = 50) -> list[tuple[Job, dict[str, int]]]:
    jobs = session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)).all()
    return [(job, counts(session, job.id)) for job in jobs]


def counts(session: Session, job_id: int) -> dict[str, int]:
    """Items per state, read from the counter table (constant time at any job size)."""
    rows = session.execute(select(JobCount.state, JobCount.n).where(JobCount.job_id == job_id)).all()
    result = {state.value: 0 for state in ItemState}
    result.update({state: int(n) for state, n in rows})
    return result


def count_by_scan(session: Session, job_id: int) -> dict[str, int]:
    """Items per state counted from the items table (for consistency checks, not for status)."""
    rows = session.execute(select(Item.state, func.count()).where(Item.job_id == job_id).group_by(Item.state)).all()
    result = {state.value: 0 for state in ItemState}
    result.update({state: int(n) for state, n in rows})
    return result


def finish_submission(session: Session, job_id: int) -> None:
    """The listing is fully in the DB: the job becomes active, or finished if nothing is left to do."""
    session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.SUBMITTING).values(state=JobState.ACTIVE))
    _finish_job_if_done(session, job_id)


def is_done(job: Job, job_counts: dict[str, int]) -> bool:
    """No item waiting or running, and the listing is complete."""
    active = sum(job_counts.get(state, 0) for state in ACTIVE_STATES)
    return job.state != JobState.SUBMITTING and active == 0


def _finish_job_if_done(session: Session, job_id: int) -> None:
    active = session.scalar(
        select(func.coalesce(func.sum(JobCount.n), 0)).where(
            JobCount.job_id == job_id, JobCount.state.in_([s.value for s in ACTIVE_STATES])
        )
    )
    if active == 0:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.ACTIVE)
            .values(state=JobState.FINISHED, finished_at=utcnow())
        )


def _shift(session: Session, job_id: int, moves: dict[str, int]) -> dict[str, int]:
    """Apply counter deltas, one UPDATE per state in sorted order (a fixed lock order: no deadlocks).
    Returns the new value of each counter it changed."""
    after: dict[str, int] = {}
    for state in sorted(moves):
        delta = moves[state]
        if delta:
            after[state] = session.execute(
                update(JobCount)
                .where(JobCount.job_id == job_id, JobCount.state == state)
                .values(n=JobCount.n + delta)
                .returning(JobCount.n)
            ).scalar_one()
    return after


def _move(session: Session, job_id: int, old: str, new: str, n: int) -> dict[str, int]:
    return _shift(session, job_id, {old: -n, new: n}) if n else {}


def _finish_after_move(session: Session, job_id: int, after: dict[str, int]) -> None:
    """After an item left `running`: finish the job if nothing is running or queued any more (the
    queued counter is only read when the running counter just reached zero)."""
    if after.get(ItemState.RUNNING, 1) == 0:
        _finish_job_if_done(session, job_id)


# --------------------------------------------------------------------------------------------- items


def add_items(session: Session, job_id: int, items: Sequence[NewItem]) -> int:
    """Insert a batch; keys the job already has are skipped. Returns how many rows were new."""
    if not items:
        return 0
    now = utcnow()
    rows = [
        {
            "job_id": job_id,
            "rel_key": item.rel_key,
            "source_uri": item.source_uri,
            "state": ItemState.FAILED if item.error_code else ItemState.QUEUED,
            "attempts": 0,
            "error_code": item.error_code,
            "error_message": item.error_message,
            "created_at": now,
            "finished_at": now if item.error_code else None,
        }
        for item in items
    ]
    insert_fn = _dialect_insert(session)
    statement = (
        insert_fn(Item)
        .on_conflict_do_nothing(index_elements=["job_id", "rel_key"])
        .returning(Item.state, sort_by_parameter_order=False)
    )
    inserted = session.execute(statement, rows).scalars().all()
    per_state: dict[str, int] = {}
    for state in inserted:
        per_state[state] = per_state.get(state, 0) + 1
    _shift(session, job_id, per_state)
    return len(inserted)


def _dialect_insert(session: Session):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def undispatched_ids(session: Session, job_id: int, *, after_id: int = 0, limit: int = 10_000) -> list[int]:
    """Queued items never sent to the broker (or handed back for re-sending), in id order."""
    return list(
        session.scalars(
            select(Item.id)
            .where(
                Item.job_id == job_id,
                Item.state == ItemState.QUEUED,
                Item.enqueued_at.is_(None),
                Item.id > after_id,
            )
            .order_by(Item.id)
            .limit(limit)
        )
    )


def queued_ids(session: Session, job_id: int, *, after_id: int = 0, limit: int = 10_000) -> list[int]:
    """All queued items of a job, in id order (the embedded runner takes them without a broker)."""
    return list(
        session.scalars(
            select(Item.id)
            .where(Item.job_id == job_id, Item.state == ItemState.QUEUED, Item.id > after_id)
            .order_by(Item.id)
            .limit(limit)
        )
    )


def mark_enqueued(session: Session, item_ids: Iterable[int], when: datetime | None = None) -> None:
    ids = list(item_ids)
    if ids:
        session.execute(
            update(Item).where(Item.id.in_(ids), Item.state == ItemState.QUEUED).values(enqueued_at=when or utcnow())
        )


def forget_enqueued(session: Session, item_ids: Iterable[int]) -> int:
    """The broker lost these queued items: clear `enqueued_at` so the next dispatch sends them again."""
    ids = list(item_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Item).where(Item.id.in_(ids), Item.state == ItemState.QUEUED).values(enqueued_at=None)
    )
    return result.rowcount


def stale_queued(session: Session, *, enqueued_before: datetime, limit: int = 100_000) -> list[tuple[int, int]]:
    """(id, job_id) of items queued and sent before `enqueued_before` (candidates for a lost message)."""
    rows = session.execute(
        select(Item.id, Item.job_id)
        .where(Item.state == ItemState.QUEUED, Item.enqueued_at < enqueued_before)
        .order_by(Item.id)
        .limit(limit)
    ).all()
    return [(int(i), int(j)) for i, j in rows]


def jobs_with_undispatched(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Item.job_id).where(Item.state == ItemState.QUEUED, Item.enqueued_at.is_(None)).group_by(Item.job_id)
        )
    )


def claim_item(session: Session, item_id: int, *, worker_id: str, lease_seconds: float) -> ClaimedItem | None:
    """queued -> running with a lease; None if the item is not queued (done, cancelled, claimed elsewhere)."""
    now = utcnow()
    row = session.execute(
        update(Item)
        .where(Item.id == item_id, Item.state == ItemState.QUEUED)
        .values(
            state=ItemState.RUNNING,
            attempts=Item.attempts + 1,
            worker_id=worker_id,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
            error_code=None,
            error_message=None,
        )
        .returning(Item.id, Item.job_id, Item.rel_key, Item.source_uri, Item.attempts)
    ).first()
    if row is None:
        return None
    _move(session, row.job_id, ItemState.QUEUED, ItemState.RUNNING, 1)
    return ClaimedItem(row.id, row.job_id, row.rel_key, row.source_uri, row.attempts)


def renew_lease(session: Session, claim: ClaimedItem, *, lease_seconds: float) -> bool:
    """Push this claim's lease to now + `lease_seconds` (compare-and-set on running + this attempt);
    False if the claim is no longer ours (the lease expired and reconcile requeued or re-claimed it)."""
    result = session.execute(
        update(Item)
        .where(Item.id == claim.id, Item.state == ItemState.RUNNING, Item.attempts == claim.attempt)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )
    return result.rowcount == 1


def _finish(session: Session, claim: ClaimedItem, new_state: ItemState, values: dict[str, Any]) -> bool:
    result = session.execute(
        update(Item)
        .where(Item.id == claim.id, Item.state == ItemState.RUNNING, Item.attempts == claim.attempt)
        .values({"state": new_state, "lease_until": None, "finished_at": utcnow(), **values})
    )
    if result.rowcount != 1:
        return False
    after = _move(session, claim.job_id, ItemState.RUNNING, new_state, 1)
    if new_state in TERMINAL_STATES:
        _finish_after_move(session, claim.job_id, after)
    return True


def record_success(
    session: Session,
    claim: ClaimedItem,
    *,
    output_uri: str,
    faces: int,
    restore_seconds: float,
    total_seconds: float,
    input_sha256: str,
    model_version: str,
) -> bool:
    """running -> succeeded for this claim; False if the claim was lost (lease expired and re-claimed)."""
    return _finish(
        session,
        claim,
        ItemState.SUCCEEDED,
        {
            "output_uri": output_uri,
            "faces": faces,
            "restore_seconds": restore_seconds,
            "total_seconds": total_seconds,
            "input_sha256": input_sha256,
            "model_version": model_version,
        },
    )


def record_failure(
    session: Session,
    claim: ClaimedItem,
    *,
    code: str,
    message: str,
    total_seconds: float | None = None,
    input_sha256: str | None = None,
) -> bool:
    """running -> failed with a stable error code and a readable message."""
    return _finish(
        session,
        claim,
        ItemState.FAILED,
        {
            "error_code": code,
            "error_message": message[:2000],
            "total_seconds": total_seconds,
            "input_sha256": input_sha256,
        },
    )


def release_item(session: Session, claim: ClaimedItem, *, reason: str) -> bool:
    """running -> queued: the worker hands the item back (shutdown, storage/DB outage); -> cancelled
    instead if the job was cancelled meanwhile. The message that carried it is acked, so it becomes
    undispatched: the next reconcile pass sends it again."""
    job_state = session.scalar(select(Job.state).where(Job.id == claim.job_id))
    if job_state == JobState.CANCELLED:
        return _finish(session, claim, ItemState.CANCELLED, {})
    values = {"error_message": reason[:2000], "finished_at": None, "enqueued_at": None}
    return _finish(session, claim, ItemState.QUEUED, values)


DEFAULT_MAX_ATTEMPTS = 3


def requeue_expired_leases(
    session: Session, *, now: datetime | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> list[int]:
    """running -> queued for every expired lease; -> cancelled if its job was cancelled; -> failed
    (`worker_lost`) once `max_attempts` workers died on it (a photo that kills its worker, e.g. out of
    memory, must not loop forever). Returns the requeued ids."""
    now = now or utcnow()
    expired = session.execute(
        select(Item.id, Item.job_id, Item.attempts, Job.state)
        .join(Job, Job.id == Item.job_id)
        .where(Item.state == ItemState.RUNNING, Item.lease_until < now)
    ).all()
    requeued: list[int] = []
    for item_id, job_id, attempts, job_state in expired:
        target = _target_after_loss(job_state, attempts, max_attempts)
        if _cas_running(session, item_id, job_id, target, Item.lease_until < now, attempts) and (
            target == ItemState.QUEUED
        ):
            requeued.append(item_id)
    return requeued


def requeue_workers(
    session: Session, job_id: int, worker_ids: Iterable[str], *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> list[int]:
    """Like `requeue_expired_leases`, for items held by workers known to be dead (the embedded runner)."""
    ids = list(worker_ids)
    if not ids:
        return []
    job_state = session.scalar(select(Job.state).where(Job.id == job_id))
    rows = session.execute(
        select(Item.id, Item.attempts).where(
            Item.job_id == job_id, Item.state == ItemState.RUNNING, Item.worker_id.in_(ids)
        )
    ).all()
    requeued = []
    for item_id, attempts in rows:
        target = _target_after_loss(job_state, attempts, max_attempts)
        if _cas_running(session, item_id, job_id, target, Item.worker_id.in_(ids), attempts) and (
            target == ItemState.QUEUED
        ):
            requeued.append(item_id)
    return requeued


def _target_after_loss(job_state: str | None, attempts: int, max_attempts: int) -> ItemState:
    if job_state == JobState.CANCELLED:
        return ItemState.CANCELLED
    return ItemState.FAILED if attempts >= max_attempts else ItemState.QUEUED


def _cas_running(session: Session, item_id: int, job_id: int, target: ItemState, guard: Any, attempts: int) -> bool:
    values: dict[str, Any] = {"state": target, "lease_until": None, "enqueued_at": None}
    if target != ItemState.QUEUED:
        values["finished_at"] = utcnow()
    if target == ItemState.FAILED:
        values["error_code"] = "worker_lost"
        values["error_message"] = (
            f"the worker processing this photo stopped {attempts} times (killed, out of memory?); "
            "`wgfpgan retry JOB --failed` tries again"
        )
    result = session.execute(
        update(Item).where(and_(Item.id == item_id, Item.state == ItemState.RUNNING, guard)).values(**values)
    )
    if result.rowcount != 1:
        return False
    after = _move(session, job_id, ItemState.RUNNING, target, 1)
    if target != ItemState.QUEUED:
        _finish_after_move(session, job_id, after)
    return True


def running_workers(session: Session, job_id: int) -> list[str]:
    return [
        w
        for w in session.scalars(
            select(Item.worker_id)
            .where(Item.job_id == job_id, Item.state == ItemState.RUNNING)
            .group_by(Item.worker_id)
        )
        if w
    ]


def _bulk_move(session: Session, job_id: int, old: ItemState, new: ItemState, values: dict[str, Any]) -> int:
    ids = session.execute(
        update(Item).where(Item.job_id == job_id, Item.state == old).values(state=new, **values).returning(Item.id)
    ).all()
    _move(session, job_id, old, new, len(ids))
    return len(ids)


def cancel_job(session: Session, job_id: int) -> int:
    """Cancel every queued item (running ones finish; an expired one is cancelled, not re-run)."""
    session.execute(update(Job).where(Job.id == job_id).values(state=JobState.CANCELLED))
    n = _bulk_move(session, job_id, ItemState.QUEUED, ItemState.CANCELLED, {"finished_at": utcnow()})
    return n


def retry_job(session: Session, job_id: int, *, failed_only: bool = False) -> int:
    """failed (and, unless failed_only, cancelled) -> queued with attempts reset; the job becomes
    active again."""
    reset = {"enqueued_at": None, "finished_at": None, "error_code": None, "error_message": None, "attempts": 0}
    n = _bulk_move(session, job_id, ItemState.FAILED, ItemState.QUEUED, reset)
    if not failed_only:
        n += _bulk_move(session, job_id, ItemState.CANCELLED, ItemState.QUEUED, reset)
    if n or not failed_only:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state != JobState.SUBMITTING)
            .values(state=JobState.ACTIVE, finished_at=None)
        )
        _finish_job_if_done(session, job_id)
    return n


def reopen_cancelled(session: Session, job_id: int) -> int:
    """A re-submission of a cancelled job asks for its cancelled items again."""
    reset = {"enqueued_at": None, "finished_at": None}
    return _bulk_move(session, job_id, ItemState.CANCELLED, ItemState.QUEUED, reset)


def list_items(
    session: Session, job_id: int, *, state: str | None = None, after_id: int = 0, limit: int = 100
) -> list[Item]:
    query = select(Item).where(Item.job_id == job_id, Item.id > after_id)
    if state:
        query = query.where(Item.state == state)
    return list(session.scalars(query.order_by(Item.id).limit(limit)))


def list_failed(session: Session, job_id: int, *, after_id: int = 0, limit: int = 100) -> list[Item]:
    return list_items(session, job_id, state=ItemState.FAILED, after_id=after_id, limit=limit)
