"""Job progress as the dashboard shows it: counts from the `job_counts` table (constant time at any job
size), a progress fraction, throughput and ETA, and locations safe to show.

Throughput is measured by this process from successive readings of the counters (`RateTracker`): a
window of recent (time, finished) samples per job, so no query ever scans the items table for timing.
Until the window spans `MIN_WINDOW` seconds (just after the server starts) the average since the job
was created stands in; a finished job shows its overall average.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from db.models import ACTIVE_STATES, Job
from db.queries import is_done
from wgfpgan.config import mask_url
from wgfpgan.storage import is_s3

WINDOW = 120.0  # seconds of counter history behind the live throughput
MIN_WINDOW = 3.0


def finished_count(counts: dict[str, int]) -> int:
    return sum(counts.values()) - sum(counts.get(state, 0) for state in ACTIVE_STATES)


class RateTracker:
    """Per-job sliding window of (monotonic time, finished items); thread-safe, bounded."""

    def __init__(self, window: float = WINDOW, max_samples: int = 256) -> None:
        self.window = window
        self.max_samples = max_samples
        self._samples: dict[int, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def observe(self, job_id: int, finished: int, now: float | None = None) -> float | None:
        """Record a reading; return items/second over the window, or None if the window is too short."""
        now = time.monotonic() if now is None else now
        with self._lock:
            samples = self._samples.setdefault(job_id, deque(maxlen=self.max_samples))
            if samples and finished < samples[-1][1]:
                samples.clear()  # a retry moved items back to queued: start measuring afresh
            samples.append((now, finished))
            while len(samples) > 2 and now - samples[1][0] >= self.window:
                samples.popleft()
            first_time, first_finished = samples[0]
        elapsed = now - first_time
        if elapsed < MIN_WINDOW:
            return None
        return (finished - first_finished) / elapsed


def public_location(location: str) -> str:
    """What a response may say about a job's source/dest: S3 URIs (credentials masked) in full, local
    folders by their last component only (no internal filesystem paths leave the server)."""
    if is_s3(location):
        return mask_url(location)
    name = PurePath(location.rstrip("/")).name
    return f"folder …/{name}" if name else "folder"


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return (end - start).total_seconds()


@dataclass(frozen=True)
class Speed:
    items_per_second: float | None
    eta_seconds: float | None
    measured: str  # "live" (counter window), "average" (since creation) or "none"


def job_speed(job: Job, counts: dict[str, int], live_rate: float | None) -> Speed:
    finished = finished_count(counts)
    remaining = sum(counts.values()) - finished
    if is_done(job, counts):
        elapsed = _seconds_between(job.created_at, job.finished_at)
        rate = finished / elapsed if elapsed and elapsed > 0 else None
        return Speed(rate, 0.0, "average" if rate else "none")
    if live_rate is not None and live_rate > 0:
        return Speed(live_rate, remaining / live_rate, "live")
    if live_rate == 0:
        return Speed(0.0, None, "live")
    elapsed = _seconds_between(job.created_at, datetime.now(UTC))
    if finished and elapsed and elapsed > 0:
        rate = finished / elapsed
        return Speed(rate, remaining / rate, "average")
    return Speed(None, None, "none")


def job_summary(job: Job, counts: dict[str, int], rates: RateTracker) -> dict[str, Any]:
    """The JSON the jobs page renders: no source/dest paths beyond `public_location`."""
    total = sum(counts.values())
    finished = finished_count(counts)
    speed = job_speed(job, counts, rates.observe(job.id, finished))
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "done": is_done(job, counts),
        "source": public_location(job.source),
        "dest": public_location(job.dest),
        "options": {k: v for k, v in (job.options or {}).items() if k in ("upscale", "weight", "ext", "embedded")},
        "counts": counts,
        "total": total,
        "finished": finished,
        "progress": finished / total if total else (1.0 if is_done(job, counts) else 0.0),
        "items_per_second": speed.items_per_second,
        "eta_seconds": speed.eta_seconds,
        "speed_measured": speed.measured,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
