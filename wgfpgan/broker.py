"""The Celery broker contract shared by the scheduler (sender) and the workers (consumer).

One place holds the task name, the queue and the at-least-once settings, so the scheduler can send
messages by task NAME without importing worker/ (or torch): `ChunkSender` wraps `Celery.send_task`.
Also reads a Redis broker's queue and unacked set (`held_item_ids`) so the reconciler can tell which
queued items no message holds any more (e.g. after Redis restarted empty).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from wgfpgan.config import Settings

RESTORE_CHUNK_TASK = "wgfpgan.restore_chunk"
# Longer than the longest chunk (chunk_size x the slowest photo on CPU): an unacked message is only
# redelivered after this; dead workers' items come back much sooner through their lease (Settings).
VISIBILITY_TIMEOUT_SECONDS = 6 * 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": None,  # outcomes live in the SQL status DB
        "task_ignore_result": True,
        "task_default_queue": settings.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_timeout": 30,
            "socket_connect_timeout": 10,
            "retry_on_timeout": True,
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "worker_enable_remote_control": True,
        "broker_heartbeat": 0,
    }


def make_celery(settings: Settings, main: str = "wgfpgan") -> Any:
    from celery import Celery

    app = Celery(main)
    app.conf.update(celery_config(settings))
    return app


def chunked(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


class ChunkSender:
    """Sends `wgfpgan.restore_chunk(item_ids)` messages over one reused broker connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings, main="wgfpgan-scheduler")
        self._producer_cm: Any = None
        self._producer: Any = None

    def __enter__(self) -> ChunkSender:
        self._producer_cm = self.app.producer_or_acquire()
        self._producer = self._producer_cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._producer_cm.__exit__(*exc)

    def send(self, item_ids: Sequence[int]) -> None:
        self.app.send_task(
            RESTORE_CHUNK_TASK,
            args=[list(item_ids)],
            queue=self.settings.queue,
            producer=self._producer,
            retry=True,
            retry_policy={"max_retries": 5, "interval_start": 0.5, "interval_step": 1, "interval_max": 5},
        )


# ----------------------------------------------------------------------------- Redis broker inspection


def is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://", "redis+socket://"))


def held_item_ids(settings: Settings, *, delivered_within: float | None = None) -> set[int] | None:
    """Item ids in messages the Redis broker holds: waiting in the queue, or delivered but unacked (only
    those delivered less than `delivered_within` seconds ago, if given: an older unacked delivery
    belongs to a worker that is probably gone, and kombu would only restore it after the visibility
    timeout). None for brokers we cannot inspect."""
    if not is_redis(settings.broker_url):
        return None
    import time

    import redis

    client = redis.Redis.from_url(settings.broker_url)
    held: set[int] = set()
    try:
        for key in _queue_keys(client, settings.queue):
            for start in range(0, client.llen(key), 1000):
                held.update(_ids_in(client.lrange(key, start, start + 999)))
        delivered = dict(client.zscan_iter("unacked_index"))
        for tag, value in client.hscan_iter("unacked"):
            if delivered_within is not None and time.time() - delivered.get(tag, 0.0) > delivered_within:
                continue
            message, _exchange, routing_key = json.loads(value)
            if routing_key == settings.queue:  # the unacked hash is shared by every queue of the DB
                held.update(_ids_in([json.dumps(message)]))
    finally:
        client.close()
    return held


def queue_length(settings: Settings) -> int | None:
    """Messages waiting in the queue (what an autoscaler such as KEDA watches), None if not Redis."""
    if not is_redis(settings.broker_url):
        return None
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    try:
        return sum(client.llen(key) for key in _queue_keys(client, settings.queue))
    finally:
        client.close()


def _queue_keys(client: Any, queue: str) -> list[bytes | str]:
    # kombu keeps priority sub-queues as "<queue>\x06\x16<n>" beside the plain list
    return [queue, *client.keys(f"{queue}\x06\x16*")]


def _ids_in(raw_messages: Iterable[bytes | str]) -> Iterator[int]:
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if message.get("headers", {}).get("task") != RESTORE_CHUNK_TASK:
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            yield from (int(i) for i in args[0])
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not one of ours
