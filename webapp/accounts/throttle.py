"""Too many failed sign-ins or bad API keys from one address: refuse for a while (429).

Counted in Redis, so every web process shares the count; with Redis down nothing is
throttled (the sign-in itself still works: failing open beats locking everyone out).
"""

from __future__ import annotations

import contextlib
import logging

import redis
from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _key(kind: str, who: str) -> str:
    return f"{settings.THROTTLE_PREFIX}:fail:{kind}:{who}"


def blocked(kind: str, who: str, limit: int) -> bool:
    """True when ``who`` failed ``limit`` times within the window."""
    try:
        count = _client().get(_key(kind, who))
    except redis.RedisError:
        return False
    return count is not None and int(count) >= limit


def failed(kind: str, who: str) -> None:
    """Count one failure; the count expires ``THROTTLE_WINDOW_S`` after the first."""
    try:
        client = _client()
        key = _key(kind, who)
        if client.incr(key) == 1:
            client.expire(key, settings.THROTTLE_WINDOW_S)
    except redis.RedisError:
        logger.warning("throttle: Redis does not answer; %s failure not counted", kind)


def forget(kind: str, who: str) -> None:
    with contextlib.suppress(redis.RedisError):
        _client().delete(_key(kind, who))
