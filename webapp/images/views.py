"""Pages: gallery, upload, image detail, dataset detail, and login-checked media files."""

from __future__ import annotations

import math
import mimetypes
import os

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils._os import safe_join
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training.models import ModelVersion
from webapp.accounts.permissions import user_can_edit, user_is_admin
from webapp.api.ids import is_id
from webapp.detection.services import (
    NoModel,
    detector_choices,
    resolve_version,
    serving_version,
    working_threshold,
)
from webapp.images.models import BoxOrigin, Dataset, Image, ImageStatus
from webapp.jobs.models import JobKind
from webapp.jobs.services import start_job
from webapp.jobs.views import visible_jobs

GALLERY_PAGE_SIZE = 48
# The lowest confidence "Run detection" stores for the review page to filter.
REVIEW_FLOOR = 0.05


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    images = (
        Image.objects.select_related("dataset")
        .order_by("-created_at", "-id")
        .annotate(
            human_boxes=Count("boxes", filter=Q(boxes__origin=BoxOrigin.HUMAN)),
            model_boxes=Count("boxes", filter=Q(boxes__origin=BoxOrigin.MODEL)),
        )
    )
    filters = {key: request.GET.get(key, "") for key in ("dataset", "source", "status")}
    if is_id(filters["dataset"]):
        images = images.filter(dataset_id=int(filters["dataset"]))
    if filters["source"]:
        images = images.filter(source=filters["source"])
    if filters["status"]:
        images = images.filter(status=filters["status"])
    page = Paginator(images, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return render(
        request,
        "images/gallery.html",
        {
            "page": page,
            "filters": filters,
            "query": query,
            "datasets": Dataset.objects.all(),
            "sources": Image.objects.order_by().values_list("source", flat=True).distinct(),
            "statuses": ImageStatus.choices,
        },
    )


@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "images/upload.html",
        {
            "datasets": Dataset.objects.all(),
            "max_mb": settings.UPLOAD_MAX_BYTES / 2**20,
            "can_edit": user_can_edit(request.user),
        },
    )


def _chosen_detector(request: HttpRequest, choices: list[ModelVersion]) -> ModelVersion | None:
    """``?model_version=`` when it is one of the choices, else the first choice."""
    raw = request.GET.get("model_version", "")
    chosen = next((v for v in choices if is_id(raw) and v.pk == int(raw)), None)
    return chosen or (choices[0] if choices else None)


def _slider_value(threshold: float) -> str:
    """``threshold`` rounded DOWN to the slider's 0.01 steps, so that the page starts by
    showing at least the boxes the API would return (1e-9: 0.29 * 100 is 28.999...)."""
    return f"{math.floor(threshold * 100 + 1e-9) / 100:.2f}"


@require_GET
def image_detail(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.select_related("dataset", "uploaded_by"), pk=image_id)
    boxes = [
        {
            "id": b.pk,
            "label": b.label_class.name,
            "color": b.label_class.color,
            "box": [round(v, 1) for v in b.xyxy],
            "origin": b.origin,
            "score": None if b.score is None else round(b.score, 4),
            "model_version": b.model_version_id,
        }
        for b in image.boxes.select_related("label_class")
    ]
    choices = detector_choices(image.dataset)
    serving = serving_version(image.dataset)
    chosen = _chosen_detector(request, choices)
    return render(
        request,
        "images/detail.html",
        {
            "image": image,
            "boxes": boxes,
            "can_edit": user_can_edit(request.user),
            "detectors": [
                {
                    "version": v,
                    "own": v.dataset_id == image.dataset_id,
                    "serving": serving is not None and v.pk == serving.pk,
                }
                for v in choices
            ],
            "chosen_detector": chosen,
            "has_model_boxes": any(b["origin"] == BoxOrigin.MODEL for b in boxes),
            # The slider starts at the chosen detector's working threshold (the scale its
            # stored boxes' scores are on), as the API does when a client sends none.
            "min_confidence": _slider_value(working_threshold(chosen) if chosen else 0.25),
        },
    )


@require_POST
def image_detect(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(Image, pk=image_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot start jobs.")
        return redirect(image)
    raw = request.POST.get("model_version", "")
    try:
        version = resolve_version(int(raw) if is_id(raw) else None, dataset=image.dataset)
    except NoModel as exc:
        messages.error(request, exc.message)
        return redirect(image)
    # Store boxes down to a low floor (the slider filters them in the page), and never
    # above the working threshold, where the slider starts.
    floor = round(min(REVIEW_FLOOR, working_threshold(version)), 4)
    job = start_job(
        JobKind.DETECT,
        user=request.user,
        dataset=image.dataset,
        params={"image_ids": [image.pk], "min_confidence": floor, "model_version": version.pk},
    )
    messages.info(
        request,
        f"Detection with {version.name} #{version.pk} started (job #{job.pk}); "
        "boxes appear when it is done.",
    )
    return redirect(f"{image.get_absolute_url()}?job={job.pk}&model_version={version.pk}")


class NewDatasetForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Dataset
        fields = ["name", "task"]


@require_http_methods(["GET", "POST"])
def dataset_list(request: HttpRequest) -> HttpResponse:
    """Every dataset; labelers and up create one here (then import into it on its page)."""
    form = NewDatasetForm(request.POST or None)
    if request.method == "POST":
        if not user_can_edit(request.user):
            messages.error(request, "Your role (viewer) cannot create datasets.")
        elif form.is_valid():
            dataset = form.save()
            messages.success(request, f"Dataset “{dataset.name}” created: import into it.")
            return redirect(dataset)
    datasets = Dataset.objects.annotate(image_count=Count("images")).order_by("name")
    return render(
        request,
        "images/datasets.html",
        {"datasets": datasets, "form": form, "can_edit": user_can_edit(request.user)},
    )


@require_GET
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    by_source = (
        dataset.images.order_by().values("source").annotate(n=Count("id")).order_by("source")
    )
    return render(
        request,
        "images/dataset_detail.html",
        {
            "dataset": dataset,
            "image_count": dataset.images.count(),
            "by_source": by_source,
            "jobs": visible_jobs(request).filter(dataset=dataset)[:10],
            "can_edit": user_can_edit(request.user),
        },
    )


@require_POST
def dataset_stats(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    if not user_can_edit(request.user):
        messages.error(request, "Your role (viewer) cannot start jobs.")
        return redirect(dataset)
    job = start_job(JobKind.IMAGE_STATS, user=request.user, dataset=dataset)
    return redirect(job)


# Stored weights (model versions, training runs' trials and states, brought backbones).
WEIGHT_FOLDERS = frozenset({"models", "runs", "backbones"})


@require_GET
def media(request: HttpRequest, path: str) -> FileResponse:
    """Serve stored files to signed-in users only (the middleware checks the login).

    Model weights, training states and brought backbones go to admins only (others use a
    model through the API); stashed uploads of running jobs to nobody; folders are no file.
    """
    try:
        full = safe_join(str(settings.MEDIA_ROOT), path)
    except Exception:  # SuspiciousFileOperation for '..' tricks
        raise Http404("No such file.") from None
    top = path.split("/", 1)[0]
    if top == "tmp" or (top in WEIGHT_FOLDERS and not user_is_admin(request.user)):
        raise Http404("No such file.")
    if not os.path.isfile(full):
        raise Http404("No such file.")
    content_type = mimetypes.guess_type(full)[0] or "application/octet-stream"
    response = FileResponse(open(full, "rb"), content_type=content_type)  # noqa: SIM115
    response["Cache-Control"] = "private, max-age=86400"
    return response
