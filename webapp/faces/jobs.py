"""Face jobs on the `gpu` queue: verify, enroll, recognize and reembed.

Uploads reach the worker stashed by :mod:`webapp.images.uploads` (validated by the view
first; the runner deletes them when the job ends). A refused request (no face,
duplicate, ...) raises ``FaceError``, a ``JobError``: the runner records its code and
status in the job's ``result["error"]``, so whoever waits for the job answers with them.
"""

from __future__ import annotations

from typing import Any

from webapp.faces import enrollment, services
from webapp.faces.reembed import reembed_faces
from webapp.faces.services import UploadedImage
from webapp.images import uploads
from webapp.images.models import Image
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind
from webapp.jobs.registry import register
from webapp.jobs.runner import JobContext


def _uploads(params: dict[str, Any]) -> dict[str, UploadedImage]:
    return {e.get("field", "image"): _read(e) for e in uploads.stash_entries(params)}


def _read(entry: dict[str, str]) -> UploadedImage:
    field = entry.get("field", "image")
    return services.read_image(uploads.stashed_bytes(entry), entry.get("name", ""), field=field)


@register(JobKind.VERIFY, uses_model=True)
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


@register(JobKind.RECOGNIZE, uses_model=True)
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


@register(JobKind.ENROLL, uses_model=True)
def enroll(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    subject = enrollment.get_subject(pk=int(params["subject"]))
    photos = [_read(entry) for entry in uploads.stash_entries(params)]
    return enrollment.enroll(
        subject,
        photos,
        user=ctx.job.user,
        detect_faces=bool(params.get("detect_faces", True)),
        box=params.get("box"),
    )


@register(services.REEMBED_JOB, uses_model=True)
def reembed(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(0.0, "Loading the verifier", force=True)
    return reembed_faces(lambda fraction, message: ctx.progress(fraction, message))


@register(JobKind.FIND_FACES, uses_model=True)
def find_faces(ctx: JobContext) -> dict[str, Any]:
    """Find the faces of a stored photo for labeling (``params["image"]``)."""
    from webapp.labeling.faces import find_faces_on

    image = Image.objects.select_related("dataset").filter(pk=int(ctx.params["image"])).first()
    if image is None:
        raise JobError("The photo no longer exists.", code="unknown_image", status=404)
    return find_faces_on(image)
