"""Labeling pages: the annotation page per image, and a dataset's label and review queues.

The annotation page is drawn by ``static/js/annotate.js`` from the JSON this view puts in
the page (the image, its classes, its labels and suggestions, who may do what); every
change is saved through the labeling API at once, with the labels version it edited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from training.models import ModelVersion
from webapp.accounts.permissions import user_can_edit
from webapp.detection.services import detector_choices, serving_version, working_threshold
from webapp.images.models import Dataset, Image, ImageStatus, Task
from webapp.labeling import services
from webapp.labeling.box_views import labels_json


def suggestion_score(version: ModelVersion | None) -> float:
    """The score from which a detector's boxes are shown as suggestions by default: its
    working threshold (chosen on its validation split)."""
    return NO_DETECTOR_SCORE if version is None else float(working_threshold(version))


# With no detector there are no suggestions; the slider still needs a position.
NO_DETECTOR_SCORE = 0.25


def _neighbours(image: Image, mode: str) -> dict[str, int | None]:
    """Previous and next image: in the dataset's order, or in the queue being worked."""
    siblings = Image.objects.filter(dataset_id=image.dataset_id)
    previous = siblings.filter(pk__lt=image.pk).order_by("-pk").values_list("pk", flat=True)
    following = siblings.filter(pk__gt=image.pk).order_by("pk").values_list("pk", flat=True)
    if mode in services.QUEUE_MODES:
        found = services.next_in_queue(image.dataset_id, mode, current=image.pk)
        next_id = found.pk if found else None
    else:
        next_id = following.first()
    return {"previous": previous.first(), "next": next_id}


def _detectors(image: Image, chosen: str) -> tuple[list[dict[str, Any]], ModelVersion | None]:
    choices = detector_choices(image.dataset)
    serving = serving_version(image.dataset)
    selected = next((v for v in choices if chosen.isdigit() and v.pk == int(chosen)), None)
    selected = selected or (choices[0] if choices else None)
    rows = [
        {
            "id": v.pk,
            "name": f"{v.name} #{v.pk}",
            "own": v.dataset_id == image.dataset_id,
            "serving": serving is not None and v.pk == serving.pk,
            "score": suggestion_score(v),
        }
        for v in choices
    ]
    return rows, selected


@require_GET
def annotate(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(
        Image.objects.select_related("dataset", "labeled_by", "reviewed_by"), pk=image_id
    )
    mode = request.GET.get("queue", "")
    detectors, chosen = _detectors(image, request.GET.get("model_version", ""))
    user = request.user
    page = {
        "image": {
            "id": image.pk,
            "name": str(image),
            "width": image.width,
            "height": image.height,
            "url": reverse("media", args=[image.file.name]),
            "dataset": image.dataset_id,
            "status": image.status,
            "review_comment": image.review_comment,
        },
        "classes": [
            {"id": c.pk, "name": c.name, "color": c.color}
            for c in image.dataset.classes.order_by("name")
        ],
        "labels": labels_json(image, chosen.pk if chosen else None),
        "detectors": detectors,
        "detector": chosen.pk if chosen else None,
        "suggestion_score": suggestion_score(chosen),
        "faces": image.dataset.task == Task.FACES or image.faces.exists(),
        "can_edit": user_can_edit(user),
        "can_review": services.can_review(user),  # type: ignore[arg-type]
        "queue": mode if mode in services.QUEUE_MODES else "",
        **_neighbours(image, mode),
        "urls": {
            "boxes": f"/api/v1/images/{image.pk}/boxes/",
            "review": f"/api/v1/images/{image.pk}/review/",
            "detect": "/api/v1/detect/?wait=0",
            "jobs": "/api/v1/jobs/",
            "annotate": "/label/images/",
            "faces": f"/api/v1/images/{image.pk}/faces/",
        },
    }
    return render(request, "labeling/annotate.html", {"image": image, "page": page})


@require_GET
def queue_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """A dataset's queues: how many images wait to be labelled and reviewed, and a start."""
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    counts = services.queue_counts(dataset.pk)
    waiting = {
        "label": sum(counts[s] for s in services.LABEL_QUEUE),
        "review": counts[ImageStatus.LABELED],
    }
    return render(
        request,
        "labeling/queue.html",
        {
            "dataset": dataset,
            "counts": [(label, counts[value]) for value, label in ImageStatus.choices],
            "waiting": waiting,
            "needs_fix": services.queue(dataset.pk, "label").filter(status=ImageStatus.NEEDS_FIX)[
                :20
            ],
            "can_edit": user_can_edit(request.user),
            "can_review": services.can_review(request.user),  # type: ignore[arg-type]
        },
    )


@require_GET
def queue_next(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Open the next image of the queue (labelers: to label; reviewers: to review)."""
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    mode = request.GET.get("mode", "label")
    if mode not in services.QUEUE_MODES:
        mode = "label"
    raw = request.GET.get("after", "")
    found = services.next_in_queue(
        dataset.pk, mode, current=int(raw) if raw.isdigit() and len(raw) < 19 else None
    )
    if found is None:
        what = "to label" if mode == "label" else "to review"
        messages.success(request, f"Nothing left {what} in “{dataset.name}”.")
        return redirect("labeling:queue", dataset.pk)
    return redirect(f"{reverse('labeling:annotate', args=[found.pk])}?queue={mode}")
