"""Face jobs on the `gpu` queue: verify, enroll, recognize and reembed.

Uploads reach the worker as files under ``MEDIA_ROOT/tmp`` (validated by the view first),
deleted once read. A refused request (no face, duplicate, ...) fails the job with the
service's message, and its code and status are kept in the job's ``result["error"]`` so
the API can answer with the right status once it has waited for the job.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from webapp.faces import enrollment, services
from webapp.faces.reembed import reembed_faces
from webapp.faces.services import FaceError, UploadedImage
from webapp.jobs.models import Job
from webapp.jobs.registry import Handler, register
from webapp.jobs.runner import JobContext, JobError


def _refusals_recorded(handler: Handler) -> Handler:
    """Turn a FaceError into a failed job whose result names the error's code and status."""

    @functools.wraps(handler)
    def run(ctx: JobContext) -> dict[str, Any]:
        try:
            return handler(ctx)
        except FaceError as exc:
            Job.objects.filter(pk=ctx.job.pk).update(result={"error": exc.as_dict()})
            raise JobError(exc.message) from None
        finally:
            _remove_uploads(ctx.params)

    return run


def _upload_entries(params: dict[str, Any]) -> list[dict[str, str]]:
    return [e for e in params.get("uploads", []) if isinstance(e, dict)]


def _remove_uploads(params: dict[str, Any]) -> None:
    for entry in _upload_entries(params):
        Path(entry["path"]).unlink(missing_ok=True)


def _read(entry: dict[str, str]) -> UploadedImage:
    field = entry.get("field", "image")
    try:
        data = Path(entry["path"]).read_bytes()
    except OSError:
        raise FaceError(
            "upload_gone", f"{field}: the uploaded image is no longer readable.", status=410
        ) from None
    return services.read_image(data, entry.get("name", ""), field=field)


def _uploads(params: dict[str, Any]) -> dict[str, UploadedImage]:
    return {e.get("field", "image"): _read(e) for e in _upload_entries(params)}


@register("verify", uses_model=True)
@_refusals_recorded
def verify(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    images = _uploads(params)
    return services.verify_faces(
        images["source_image"].pixels,
        images["target_image"].pixels,
        threshold=params.get("threshold"),
        detect_faces=bool(params.get("detect_faces", True)),
        source_box=params.get("source_box"),
        target_box=params.get("target_box"),
    )


@register("recognize", uses_model=True)
@_refusals_recorded
def recognize(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    image = _uploads(params)["image"]
    return services.recognize(
        image.pixels,
        top_k=int(params.get("top_k", 1)),
        threshold=params.get("threshold"),
        detect_faces=bool(params.get("detect_faces", True)),
        box=params.get("box"),
        limit=int(params.get("limit", 0)),
        min_score=float(params.get("min_score", 0.0)),
    )


@register("enroll", uses_model=True)
@_refusals_recorded
def enroll(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    subject = enrollment.get_subject(pk=int(params["subject"]))
    uploads = [_read(entry) for entry in _upload_entries(params)]
    return enrollment.enroll(
        subject,
        uploads,
        user=ctx.job.user,
        detect_faces=bool(params.get("detect_faces", True)),
        box=params.get("box"),
    )


@register(services.REEMBED_JOB, uses_model=True)
@_refusals_recorded
def reembed(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(0.0, "Loading the verifier", force=True)
    return reembed_faces(lambda fraction, message: ctx.progress(fraction, message))
