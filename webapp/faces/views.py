"""Pages of the faces feature: verify two photos, recognise the people in one.

Model work runs in the same ``verify`` and ``recognize`` jobs as the API (on the `gpu`
queue, so the web process never loads a model); a page waits for its job up to
``PAGE_WAIT_S`` and draws the answer over previews of the uploads. The uploads are not
stored: their previews travel in the page as data URLs, re-encoded as JPEG (so PGM and TIFF
photos show in every browser) and scaled down, while the SVG overlay keeps the original
pixel coordinates in its ``viewBox`` so the service's boxes need no conversion.

The people (gallery) pages are in :mod:`webapp.faces.people_views`, the verifier reports in
:mod:`webapp.faces.model_views`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from PIL import Image as PILImage

from training.models import ModelKind, ModelVersion
from webapp.accounts.models import signed_in_user
from webapp.faces import services
from webapp.faces.api import read_upload, recognition_params, verification_params
from webapp.faces.services import FaceError, UploadedImage
from webapp.jobs.errors import JobError
from webapp.jobs.models import Job, JobKind
from webapp.jobs.services import start_job
from webapp.jobs.waiting import PAGE_WAIT_S, finished_result, wait_for_job

PREVIEW_PX = 720
# The services name form fields in their messages; a page names them as people see them.
FIELD_WORDS = {
    "source_image": "First photo",
    "target_image": "Second photo",
    "image": "Photo",
}
# API options the services name in their advice, as the pages' own controls are labelled.
CONTROL_WORDS = {
    "detect_faces=false": "“These images are face crops” ticked",
}


# ---------------------------------------------------------------------------- shared


def plain(message: str) -> str:
    """A service message as a page says it: its leading field name (``source_image: …``)
    and the API options it mentions put in the words of the page's own form."""
    for api, page in CONTROL_WORDS.items():
        message = message.replace(api, page)
    field, sep, rest = message.partition(": ")
    return f"{FIELD_WORDS[field]}: {rest}" if sep and field in FIELD_WORDS else message


def forbidden(request: HttpRequest, action: str) -> HttpResponse:
    """403 as a page that says what the role may not do."""
    role = getattr(request.user, "effective_role", "viewer")
    return render(request, "faces/forbidden.html", {"action": action, "role": role}, status=403)


def run_page_job(
    request: HttpRequest, kind: str, params: dict[str, Any]
) -> tuple[Job, dict[str, Any] | None]:
    """Start a face job as the signed-in user and wait for it up to ``PAGE_WAIT_S``.

    Returns:
        The job and its result, or None for the result while it is still queued or running.

    Raises:
        JobError: the refusal the job recorded (no face, duplicate, ...) or its failure.
    """
    job = start_job(kind, user=signed_in_user(request.user), params=params)
    job = wait_for_job(job, PAGE_WAIT_S)
    return job, finished_result(job)


def form_error(form: forms.Form) -> FaceError:
    """The form's first error as one sentence naming its field."""
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        prefix = f"{label or name.replace('_', ' ').capitalize()}: " if name != "__all__" else ""
        return FaceError("invalid", f"{prefix}{errors[0]}")
    return FaceError("invalid", "The form is not valid.")


def serving_models(*, recognition: bool = False) -> dict[str, Any]:
    """The active verifier and face detector, and the threshold used when none is given.

    With ``recognition``, the threshold 1:K search uses (stricter than 1:1 verification's
    when the verifier was calibrated for it), as :func:`services.recognize` applies it.
    """
    verifier = ModelVersion.active(ModelKind.VERIFIER)
    metrics = (verifier.metrics or {}) if verifier else {}
    threshold = services.calibrated_threshold(verifier) if verifier else None
    rule = str(metrics.get("threshold_rule", ""))
    if recognition and verifier is not None and threshold is not None:
        stricter = services.recognition_threshold(verifier, threshold)
        if stricter < threshold:
            threshold = stricter
            rule = str(metrics.get("recognition_threshold_rule", "recognition"))
    return {
        "verifier": verifier,
        "detector": services.serving_face_detector(),
        "default_threshold": threshold,
        "threshold_rule": rule,
    }


def _positive(value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValidationError("The threshold must be a number above 0.")


class FaceOptionsForm(forms.Form):
    threshold = forms.FloatField(
        required=False,
        label="Threshold",
        validators=[_positive],
        widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
    )
    face_crops = forms.BooleanField(required=False, label="These images are face crops")


class VerifyForm(FaceOptionsForm):
    source_image = forms.FileField(label="First photo")
    target_image = forms.FileField(label="Second photo")


class RecognizeForm(FaceOptionsForm):
    image = forms.FileField(label="Photo")
    top_k = forms.IntegerField(
        required=False, min_value=1, max_value=10, initial=3, label="Candidates per face"
    )


# ---------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Preview:
    """An upload as the page shows it; ``width``/``height`` are the original pixels."""

    src: str
    width: int
    height: int
    name: str


def preview(upload: UploadedImage) -> Preview:
    image = PILImage.fromarray(upload.pixels)
    image.thumbnail((PREVIEW_PX, PREVIEW_PX))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    src = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return Preview(src, upload.width, upload.height, upload.name)


def face_box(
    box: dict[str, float], shown: Preview, label: str = "", css: str = ""
) -> dict[str, Any]:
    """A service box as the template draws it: SVG rect plus an HTML label placed in %."""
    x1, y1, x2, y2 = (float(box[k]) for k in ("x1", "y1", "x2", "y2"))
    return {
        "x": x1,
        "y": y1,
        "w": x2 - x1,
        "h": y2 - y1,
        "left": round(100 * x1 / shown.width, 3),
        "top": round(100 * y1 / shown.height, 3),
        "label": label,
        # A label goes above its box, or inside it when the box touches the top edge.
        "css": f"{css} inside" if y1 < 0.06 * shown.height else css,
    }


def figure(shown: Preview, title: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"preview": shown, "title": title, "boxes": boxes}


# ---------------------------------------------------------------------------- verify


def _verify(request: HttpRequest, form: VerifyForm) -> dict[str, Any]:
    if not form.is_valid():
        raise form_error(form)
    data = form.cleaned_data
    source = read_upload(data["source_image"], "source_image")
    target = read_upload(data["target_image"], "target_image")
    options = {"threshold": data["threshold"], "detect_faces": not data["face_crops"]}
    params = verification_params(source, target, options)
    job, result = run_page_job(request, JobKind.VERIFY, params)
    if result is None:
        return {"job": job}
    return {"job": job, "result": result, "figures": _verify_figures(source, target, result)}


def _verify_figures(
    source: UploadedImage, target: UploadedImage, result: dict[str, Any]
) -> list[dict[str, Any]]:
    left, right = preview(source), preview(target)
    target_boxes = [
        face_box(m["box"], right, "" if i == 0 else f"{m['similarity']:.0%}", "other")
        for i, m in enumerate(result.get("matches", []))
        if i > 0
    ]
    return [
        figure(left, "First photo", [face_box(result["source_face"]["box"], left, "", "compared")]),
        figure(
            right,
            "Second photo",
            [face_box(result["target_face"]["box"], right, "", "compared"), *target_boxes],
        ),
    ]


def _face_page(
    request: HttpRequest,
    template: str,
    form_class: type[forms.Form],
    run: Callable[[HttpRequest, Any], dict[str, Any]],
    context: dict[str, Any],
) -> HttpResponse:
    """GET: the empty form. POST: ``run`` the form's job and show what it returns, or the
    refusal in the page's words, with the refusal's status."""
    if request.method == "GET":
        return render(request, template, {**context, "form": form_class()})
    form = form_class(request.POST, request.FILES)
    try:
        shown = run(request, form)
    except JobError as exc:
        context.update(form=form, error=plain(exc.message))
        return render(request, template, context, status=exc.status)
    result = shown.get("result")
    if result is not None:
        for key in ("notes", "warnings"):
            result[key] = [plain(line) for line in result.get(key, [])]
    return render(request, template, {**context, "form": form, **shown})


@require_http_methods(["GET", "POST"])
def verify_page(request: HttpRequest) -> HttpResponse:
    """Two photos in, "Same person" or "Different people" out, with the numbers behind it."""
    context = {"serving": serving_models()}
    return _face_page(request, "faces/verify.html", VerifyForm, _verify, context)


# ---------------------------------------------------------------------------- recognize


def _recognize(request: HttpRequest, form: RecognizeForm) -> dict[str, Any]:
    if not form.is_valid():
        raise form_error(form)
    data = form.cleaned_data
    upload = read_upload(data["image"], "image")
    options = {
        "top_k": data["top_k"] or 3,
        "threshold": data["threshold"],
        "detect_faces": not data["face_crops"],
    }
    job, result = run_page_job(request, JobKind.RECOGNIZE, recognition_params(upload, options))
    if result is None:
        return {"job": job}
    shown = preview(upload)
    boxes = [
        face_box(
            face["box"],
            shown,
            f"{i}. {face['label']} {face['similarity']:.0%}" if face["match"] else f"{i}. unknown",
            "known" if face["match"] else "unknown",
        )
        for i, face in enumerate(result.get("faces", []), start=1)
    ]
    return {
        "job": job,
        "result": result,
        "figure": figure(shown, "Photo", boxes),
        "threshold_given": data["threshold"] is not None,
    }


@require_http_methods(["GET", "POST"])
def recognize_page(request: HttpRequest) -> HttpResponse:
    """One photo in: every face boxed with its best enrolled person, or "unknown"."""
    context = {"serving": serving_models(recognition=True)}
    return _face_page(request, "faces/recognize.html", RecognizeForm, _recognize, context)
