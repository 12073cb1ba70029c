"""Uploaded files on their way in: the size check, the decode, and stashing one for a job.

Every endpoint that takes an image file (uploads, detection, faces, their pages) goes
through here, so a refused file gets the same code, status and message everywhere:
413 for the size limits, 400 for anything else (:func:`refusal`).

A file that a job will read (detect or verify a photo without storing it) is *stashed*
under ``MEDIA_ROOT/tmp`` and referred to in the job's params by its storage name, never
by a server path: job answers are shown to clients. The job runner removes a job's
stashes when the job ends; :func:`sweep_stale_uploads` removes those whose job never ran.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from webapp.images.validation import DecodedImage, ImageRejected, decode_upload
from webapp.jobs.errors import JobError

SIZE_CODES = frozenset({"file_too_large", "too_many_pixels"})
STASH_FOLDER = "tmp"
STASH_MAX_AGE_S = 3600.0
SWEEP_EVERY_S = 60.0
_last_sweep = -SWEEP_EVERY_S


class UploadedFile(Protocol):
    """What Django's UploadedFile offers that we use."""

    name: str | None
    size: int | None

    def read(self) -> bytes: ...


def refusal(exc: ImageRejected, field: str | None = None) -> JobError:
    """A refused image as the one error type: 413 for size limits, else 400.

    With ``field``, the message starts with the form field's name and ``details`` names it.
    """
    return JobError(
        f"{field}: {exc.message}" if field else exc.message,
        code=exc.code,
        status=413 if exc.code in SIZE_CODES else 400,
        details={"field": field} if field else {},
    )


def read_limited(uploaded: UploadedFile, field: str | None = None) -> bytes:
    """The file's bytes, refused before reading when its declared size is over the limit."""
    limit = settings.UPLOAD_MAX_BYTES
    if uploaded.size and uploaded.size > limit:
        raise refusal(
            ImageRejected(
                "file_too_large",
                f"The file is {uploaded.size / 2**20:.1f} MB; the limit is {limit / 2**20:.1f} MB.",
            ),
            field,
        )
    return uploaded.read()


def decode(data: bytes, field: str | None = None) -> DecodedImage:
    """Decode and validate bytes under the configured limits, or raise :func:`refusal`."""
    try:
        return decode_upload(
            data, max_bytes=settings.UPLOAD_MAX_BYTES, max_pixels=settings.UPLOAD_MAX_PIXELS
        )
    except ImageRejected as exc:
        raise refusal(exc, field) from None


def stash(
    content: bytes, *, name: str = "", field: str = "image", suffix: str = ""
) -> dict[str, str]:
    """Keep validated bytes where a worker can read them; returns the job's upload entry.

    The entry is ``{"stash": storage name, "name": the client's file name, "field"}``.
    """
    global _last_sweep
    if time.monotonic() - _last_sweep > SWEEP_EVERY_S:  # not a folder listing per request
        _last_sweep = time.monotonic()
        sweep_stale_uploads()
    stored = default_storage.save(
        f"{STASH_FOLDER}/{uuid.uuid4().hex}{suffix or '.upload'}", ContentFile(content)
    )
    return {"stash": stored, "name": name, "field": field}


def stash_entries(params: dict[str, Any]) -> list[dict[str, str]]:
    """The upload entries of a job's params (``params["uploads"]``)."""
    return [e for e in params.get("uploads", []) if isinstance(e, dict) and "stash" in e]


def _stash_path(entry: dict[str, str]) -> Path:
    name = str(entry["stash"])
    # Only our own stash folder: params are data, never a way to read other files.
    if not name.startswith(f"{STASH_FOLDER}/") or ".." in Path(name).parts:
        raise JobError("The job refers to an upload outside the upload folder.", code="invalid")
    return Path(default_storage.path(name))


def stashed_bytes(entry: dict[str, str]) -> bytes:
    """The bytes a request stashed for its job; 410 when they are gone (swept or read)."""
    try:
        return _stash_path(entry).read_bytes()
    except OSError:
        field = entry.get("field", "image")
        raise JobError(
            f"{field}: the uploaded image is no longer readable.", code="upload_gone", status=410
        ) from None


def remove_stashed(params: dict[str, Any]) -> None:
    """Delete a job's stashed uploads (the runner calls this when the job ends)."""
    for entry in stash_entries(params):
        try:
            _stash_path(entry).unlink(missing_ok=True)
        except JobError:
            continue


def public_uploads(params: dict[str, Any]) -> list[dict[str, str]]:
    """The uploads as clients may see them: names and fields, no storage names."""
    return [{"name": e.get("name", ""), "field": e.get("field", "")} for e in stash_entries(params)]


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """A job's params with its uploads shown by :func:`public_uploads` (older rows kept a
    server path under ``temp_path``: never shown)."""
    shown = {k: v for k, v in params.items() if k not in ("uploads", "temp_path")}
    if "uploads" in params:
        shown["uploads"] = public_uploads(params)
    return shown


def sweep_stale_uploads(now: float | None = None) -> int:
    """Delete stashes older than an hour (their job was cancelled or never ran).

    Workers remove stashes as their jobs end, so a file listed here may be gone a moment
    later: that is no error (under load it was a 500 on the request that swept).
    """
    folder = Path(settings.MEDIA_ROOT) / STASH_FOLDER
    if not folder.is_dir():
        return 0
    cutoff = (now or time.time()) - STASH_MAX_AGE_S
    removed = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def single_file(files: Any, field: str) -> Any:
    """The one file sent as ``field``, None if none; two or more under one field name are
    refused (400) rather than all but one silently dropped."""
    sent = files.getlist(field)
    if len(sent) > 1:
        raise JobError(
            f"{field}: {len(sent)} files were sent under one field; send one.",
            code="too_many_files",
            status=400,
            details={"field": field},
        )
    return sent[0] if sent else None
