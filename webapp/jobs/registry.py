"""Which function carries out which kind of job, and on which queue.

Apps register their handlers at start-up (AppConfig.ready); the runner looks them up.
A handler takes a JobContext and returns a JSON-serialisable result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from webapp.jobs.runner import JobContext

Handler = Callable[["JobContext"], dict[str, Any]]


@dataclass(frozen=True)
class JobType:
    kind: str
    handler: Handler
    uses_model: bool  # model work goes to the `gpu` queue, the rest to `default`

    @property
    def queue(self) -> str:
        return str(settings.JOB_QUEUE_GPU if self.uses_model else settings.JOB_QUEUE_DEFAULT)


_REGISTRY: dict[str, JobType] = {}


def register(kind: str, *, uses_model: bool) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        _REGISTRY[kind] = JobType(kind=kind, handler=handler, uses_model=uses_model)
        return handler

    return decorator


def get_job_type(kind: str) -> JobType | None:
    return _REGISTRY.get(kind)


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)
