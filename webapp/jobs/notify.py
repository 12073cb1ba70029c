"""A finished job says so on Redis (pub/sub), so a request waiting for it answers at once
instead of at its next poll. Best effort both ways: with Redis down the waiter polls the
database as before, and a lost message only costs the poll interval."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client() -> redis.Redis:
    """One client (and connection pool) per broker URL and process, not a new TCP
    connection for every message and every waiting request."""
    url = settings.CELERY_BROKER_URL
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=0.5)
            _clients[url] = client
        return client


def channel(job_id: int) -> str:
    return f"{settings.THROTTLE_PREFIX}:job-finished:{job_id}"


def job_finished(job_id: int) -> None:
    with contextlib.suppress(redis.RedisError):
        _client().publish(channel(job_id), "1")


@contextlib.contextmanager
def listening(job_id: int) -> Iterator[Any]:
    """A subscription to the job's channel (None when Redis does not answer)."""
    pubsub = None
    try:
        pubsub = _client().pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(channel(job_id))
    except redis.RedisError:
        pubsub = None
    try:
        yield pubsub
    finally:
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                pubsub.close()


def wait_message(pubsub: Any, timeout: float) -> bool:
    """True when the job's message came within ``timeout`` seconds."""
    if pubsub is None:
        return False
    try:
        return pubsub.get_message(timeout=timeout) is not None
    except redis.RedisError:
        return False
