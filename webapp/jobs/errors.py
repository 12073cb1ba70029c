"""The one error type for refusals and failures that people see, in a request or a job."""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """A refusal or domain failure, with what an HTTP answer needs to say it.

    Raised by services and job handlers alike. In a job, the runner records it on the row
    (``error`` = the message, ``result["error"]`` = :meth:`as_dict`), so whoever waits for
    the job answers with the same code and status as if the request had been refused
    synchronously; in a request, the API's exception handler turns it into the API's
    error body.

    Attributes:
        code: stable and machine-readable, e.g. ``"no_face"``.
        message: a sentence for people.
        status: the HTTP status that fits (400 bad input, 404 unknown id, 413 too large,
            422 understood but not doable, 503 no model, ...).
        details: extra JSON-able facts (the field, the ids involved).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "job_failed",
        status: int = 422,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> JobError:
        """The error :meth:`as_dict` recorded (tolerating rows written by older code)."""
        return cls(
            str(recorded.get("message") or "The job failed."),
            code=str(recorded.get("code") or "job_failed"),
            status=int(recorded.get("status") or 422),
            details=dict(recorded.get("details") or {}),
        )
