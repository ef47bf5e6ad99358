"""Prometheus metrics at /metrics, read from the status database at scrape time (one registry per app):

- `wgfpgan_items{state}`: items per state over all jobs, from the `job_counts` counters.
- `wgfpgan_items_processed`: succeeded + failed items (a gauge, not a counter: a retry moves items back
  to queued, and the number comes from the database, so it survives restarts of this server).
- `wgfpgan_queue_depth`: queued items (waiting for a worker).
- `wgfpgan_jobs{state}`: jobs per state.
- `wgfpgan_item_failures{reason}`: failed items per error code (reads only failed rows, via the
  (state, ...) index).
- `wgfpgan_recent_item_seconds{kind,quantile}`: total (claim to record) and model seconds per item over
  the succeeded items among the `RECENT_ITEMS` newest item ids (a backward primary-key read of that many
  rows; filtering on state in SQL would let the planner pick the state index and sort every succeeded
  item: 1.7 s per scrape at a million items on SQLite, instead of milliseconds).
- `wgfpgan_try_seconds`: a histogram of try-page restorations done by this server.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import Database
from db.models import Item, ItemState, Job, JobCount

RECENT_ITEMS = 1000
QUANTILES = (0.5, 0.9, 0.99)


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (non-empty)."""
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _read(session: Session) -> dict:
    items = dict(session.execute(select(JobCount.state, func.sum(JobCount.n)).group_by(JobCount.state)).all())
    jobs = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    failures: dict[str, int] = {}
    for code, n in session.execute(
        select(Item.error_code, func.count()).where(Item.state == ItemState.FAILED).group_by(Item.error_code)
    ):
        failures[code or "unknown"] = failures.get(code or "unknown", 0) + int(n)
    newest = session.execute(
        select(Item.state, Item.total_seconds, Item.restore_seconds).order_by(Item.id.desc()).limit(RECENT_ITEMS)
    ).all()
    recent = [(total, restore) for state, total, restore in newest if state == ItemState.SUCCEEDED]
    return {"items": items, "jobs": jobs, "failures": failures, "recent": recent}


class StatusCollector(Collector):
    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        data = self.database.run(_read)
        items = GaugeMetricFamily("wgfpgan_items", "Items per state over all jobs", labels=["state"])
        for state in ItemState:
            items.add_metric([state.value], float(data["items"].get(state.value) or 0))
        yield items
        processed = sum(float(data["items"].get(state) or 0) for state in (ItemState.SUCCEEDED, ItemState.FAILED))
        yield GaugeMetricFamily("wgfpgan_items_processed", "Items processed (succeeded + failed)", value=processed)
        yield GaugeMetricFamily(
            "wgfpgan_queue_depth", "Items queued, waiting for a worker", value=float(data["items"].get("queued") or 0)
        )
        jobs = GaugeMetricFamily("wgfpgan_jobs", "Jobs per state", labels=["state"])
        for state, n in sorted(data["jobs"].items()):
            jobs.add_metric([state], float(n))
        yield jobs
        failures = GaugeMetricFamily("wgfpgan_item_failures", "Failed items per error code", labels=["reason"])
        for reason, n in sorted(data["failures"].items()):
            failures.add_metric([reason], float(n))
        yield failures
        seconds = GaugeMetricFamily(
            "wgfpgan_recent_item_seconds",
            f"Seconds per succeeded item among the {RECENT_ITEMS} newest items (total: claim to record; "
            "restore: model time)",
            labels=["kind", "quantile"],
        )
        for kind, column in (("total", 0), ("restore", 1)):
            values = sorted(float(row[column]) for row in data["recent"] if row[column] is not None)
            for q in QUANTILES if values else ():
                seconds.add_metric([kind, str(q)], quantile(values, q))
        yield seconds


def make_registry(database: Database) -> tuple[CollectorRegistry, Histogram]:
    """A registry with the status collector, and the try-page histogram to observe."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(database))
    try_seconds = Histogram(
        "wgfpgan_try_seconds",
        "Seconds per try-page restoration",
        buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        registry=registry,
    )
    return registry, try_seconds
