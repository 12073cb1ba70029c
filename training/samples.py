"""Turn a dataset's rows into the pure training code's samples (the Django side of training)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from django.core.files.storage import default_storage

from training.detection import DetectionSample
from training.formats.folders import FaceSample
from training.splits import SPLIT_SCHEME
from webapp.faces.models import Face
from webapp.images.models import Box, BoxOrigin, Dataset, Image, SplitAssignment


def class_names_of(dataset: Dataset) -> list[str]:
    """The dataset's classes in a stable order (by name): the model's label indices."""
    return sorted(dataset.classes.values_list("name", flat=True))


def split_samples(
    dataset: Dataset, class_names: list[str], scheme: str = SPLIT_SCHEME
) -> dict[str, list[DetectionSample]]:
    """Human-labelled images of `dataset` grouped by split: {"train": [...], "val": ..}."""
    index = {name: i for i, name in enumerate(class_names)}
    split_of = dict(
        SplitAssignment.objects.filter(image__dataset=dataset, scheme=scheme).values_list(
            "image_id", "split"
        )
    )
    boxes: dict[int, list[tuple[list[float], int]]] = defaultdict(list)
    for box in Box.objects.filter(image__dataset=dataset, origin=BoxOrigin.HUMAN).select_related(
        "label_class"
    ):
        if box.label_class.name in index:
            boxes[box.image_id].append((box.xyxy, index[box.label_class.name]))
    out: dict[str, list[DetectionSample]] = defaultdict(list)
    for image in Image.objects.filter(dataset=dataset, pk__in=split_of).order_by("pk"):
        found = boxes.get(image.pk, [])
        out[split_of[image.pk]].append(
            DetectionSample(
                Path(default_storage.path(str(image.file.name))),
                np.array([b for b, _ in found], np.float32).reshape(-1, 4),
                np.array([c for _, c in found], np.int64),
            )
        )
    return dict(out)


def face_samples(dataset: Dataset, scheme: str = SPLIT_SCHEME) -> dict[str, list[FaceSample]]:
    """Faces of `dataset` assigned to a subject, grouped by their image's split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` of ``FaceSample`` whose identity is
        the subject's id (as text) and whose box is the face's box (None = whole image).
        Faces of images without a split are left out.
    """
    split_of = dict(
        SplitAssignment.objects.filter(image__dataset=dataset, scheme=scheme).values_list(
            "image_id", "split"
        )
    )
    out: dict[str, list[FaceSample]] = defaultdict(list)
    faces = (
        Face.objects.filter(image__dataset=dataset, subject__isnull=False)
        .select_related("image")
        .order_by("pk")
    )
    for face in faces:
        split = split_of.get(face.image_id)
        if split is None:
            continue
        out[split].append(
            FaceSample(
                image_path=Path(default_storage.path(face.image.file.name)),
                identity=str(face.subject_id),
                box=face.box,
            )
        )
    return dict(out)
