"""The job page's item listing: filters plus keyset paging that stays fast at a million items.

A page is read per item state: `WHERE job_id = ? AND state = ? AND id > ? ORDER BY id LIMIT n+1`, one
ordered range read of the (job_id, state, id) index for each state the filter allows (at most five),
merged by id. Each read stops after n+1 rows, so a page costs O(n) rows at any job size and however the
job's ids are interleaved with other jobs' — never an OFFSET scan, never a sort of the whole job — and
totals come from the `job_counts` counters, never a COUNT(*). The extra row tells whether a next page
exists.

Filters and the states they imply: an error code only exists on failed items (claims and retries clear
it, every failure sets one), so `has_error=yes` reads failed items and `has_error=no` the other states;
faces are only recorded for succeeded items, so `faces=...` reads succeeded items (and filters them on
the fly: a rare `faces=none` may read many succeeded rows per page, as there is no index on faces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from db.models import Item, ItemState, Job

MAX_PAGE = 500
FacesFilter = Literal["any", "none", "some"]


class FilterConflict(ValueError):
    """A combination that can match nothing, e.g. state=queued with faces=some."""


@dataclass(frozen=True)
class ItemFilter:
    state: ItemState | None = None
    has_error: bool | None = None
    faces: FacesFilter = "any"

    def implied_state(self) -> ItemState | None:
        wanted = {self.state} if self.state else set()
        if self.has_error:
            wanted.add(ItemState.FAILED)
        if self.faces != "any":
            wanted.add(ItemState.SUCCEEDED)
        if len(wanted) > 1:
            raise FilterConflict(
                "these filters match nothing together: errors are only on failed items, faces only on succeeded ones"
            )
        return next(iter(wanted), None)

    def states(self) -> list[ItemState]:
        """The item states a page must read."""
        implied = self.implied_state()
        if implied is not None:
            return [implied]
        return [state for state in ItemState if not (self.has_error is False and state == ItemState.FAILED)]

    def apply(self, query: Select) -> Select:
        """The conditions besides job, state and id."""
        if self.has_error is True:
            query = query.where(Item.error_code.is_not(None))
        elif self.has_error is False:
            query = query.where(Item.error_code.is_(None))
        if self.faces == "none":
            query = query.where(Item.faces == 0)
        elif self.faces == "some":
            query = query.where(Item.faces > 0)
        return query


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]
    next_after: int | None  # pass as `after` for the next page
    prev_before: int | None  # pass as `before` for the previous page


def page_queries(
    job_id: int, item_filter: ItemFilter, *, after: int = 0, before: int | None = None, limit: int = 50
) -> list[Select]:
    """One SELECT per state for a page (exposed so a test can EXPLAIN them)."""
    queries = []
    for state in item_filter.states():
        query = item_filter.apply(select(Item).where(Item.job_id == job_id, Item.state == state.value))
        if before is not None:
            query = query.where(Item.id < before).order_by(Item.id.desc())
        else:
            query = query.where(Item.id > after).order_by(Item.id)
        queries.append(query.limit(limit + 1))
    return queries


def item_page(
    session: Session,
    job_id: int,
    item_filter: ItemFilter,
    *,
    after: int = 0,
    before: int | None = None,
    limit: int = 50,
) -> ItemPage:
    """One page of items in id order, after `after` (forwards) or before `before` (backwards)."""
    limit = max(1, min(limit, MAX_PAGE))
    rows: list[Item] = []
    for query in page_queries(job_id, item_filter, after=after, before=before, limit=limit):
        rows.extend(session.scalars(query))
    rows.sort(key=lambda item: item.id, reverse=before is not None)
    more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, after > 0
    return ItemPage(
        items=rows,
        next_after=rows[-1].id if rows and has_next else None,
        prev_before=rows[0].id if rows and has_prev else None,
    )


def get_item(session: Session, item_id: int) -> Item | None:
    return session.get(Item, item_id)


def redact(message: str | None, job: Job) -> str | None:
    """An error message with the job's source/dest locations replaced by SOURCE/DEST (no paths leak)."""
    if not message:
        return message
    for location, label in ((job.source, "SOURCE"), (job.dest, "DEST")):
        root = location.rstrip("/")
        if root:
            message = message.replace(root, label)
    return message


def item_summary(item: Item, job: Job) -> dict[str, Any]:
    return {
        "id": item.id,
        "job_id": item.job_id,
        "key": item.rel_key,
        "state": item.state,
        "attempts": item.attempts,
        "error_code": item.error_code,
        "error_message": redact(item.error_message, job),
        "faces": item.faces,
        "restore_seconds": item.restore_seconds,
        "total_seconds": item.total_seconds,
        "model_version": item.model_version,
        "has_output": item.state == ItemState.SUCCEEDED and item.output_uri is not None,
        "finished_at": item.finished_at.isoformat() if item.finished_at else None,
    }
