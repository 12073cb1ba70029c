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


def whole_image_face_samples(
    faces_dataset: Dataset, class_names: list[str], scheme: str = SPLIT_SCHEME
) -> list[DetectionSample]:
    """The train-split faces of ``faces_dataset`` stored as whole images (no box), each as a
    detection sample whose one box is the whole image, for a one-class face detector.

    Raises:
        ValueError: ``faces_dataset`` is not a faces dataset, the detector has more than one
            class, or there is no such face in its train split.
    """
    if faces_dataset.task != "faces":
        raise ValueError(f"{faces_dataset.name!r} is a {faces_dataset.task} dataset, not faces")
    if len(class_names) != 1:
        raise ValueError(f"whole-image faces need a one-class face detector, not {class_names}")
    train = SplitAssignment.objects.filter(
        image__dataset=faces_dataset, scheme=scheme, split="train"
    ).values_list("image_id", flat=True)
    images = Image.objects.filter(
        pk__in=train, faces__x1__isnull=True, faces__subject__isnull=False
    ).distinct()
    samples = []
    for image in images.order_by("pk"):
        path = Path(default_storage.path(str(image.file.name)))
        box = np.array([[0.0, 0.0, float(image.width), float(image.height)]], np.float32)
        samples.append(DetectionSample(path, box, np.zeros(1, np.int64)))
    if not samples:
        raise ValueError(f"{faces_dataset.name!r} has no whole-image faces in its train split")
    return samples
