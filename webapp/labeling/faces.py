"""Faces on a photo: find them, then say who each one is, that it is someone we do not
know, or that it is not a face at all.

Found faces are ``Face`` rows (origin model, label pending) embedded by the active
verifier, so the page can suggest who each one looks like among the people of the photo's
dataset. Naming a face in the recognition gallery's dataset is enrolling it: recognition
searches it from then on. In another faces dataset it is a training label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from django.db import transaction

from inference.boxes import box_iou
from webapp.accounts.models import User
from webapp.faces import enrollment
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.faces.services import (
    FaceError,
    active_verifier,
    calibrated_threshold,
    find_faces,
    gallery_dataset,
    load_gallery,
    load_models,
    match_embeddings,
    recognition_threshold,
)
from webapp.images.models import Image
from webapp.images.pixels import image_rgb

# A found face overlapping a face the photo already has this much is the same face.
SAME_FACE_IOU = 0.5


def find_faces_on(image: Image) -> dict[str, Any]:
    """Detect the faces of a stored photo and add those it does not have yet.

    Raises:
        FaceError: no verifier (503), no detector for a large photo (503), no face (422).
    """
    models = load_models()
    search = find_faces(models, image_rgb(image), field=str(image))
    known = [f.box for f in image.faces.all() if f.box is not None]
    fresh = [f for f in search.faces if not _overlaps(f.box, known)]
    embeddings = models.pipeline.embed([f.crop for f in fresh])
    with transaction.atomic():
        for found, embedding in zip(fresh, embeddings, strict=True):
            x1, y1, x2, y2 = (None,) * 4 if found.whole_image else found.box
            face = Face(
                image=image,
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                score=found.score,
                origin=FaceOrigin.MODEL,
                warnings=list(found.warnings),
                label=FaceLabel.PENDING,
            )
            face.set_embedding(embedding, models.verifier.pk)
            face.save()
    return {"image": image.pk, "found": len(search.faces), "added": len(fresh)}


def _overlaps(box: tuple[float, float, float, float], others: list[Any]) -> bool:
    if not others:
        return False
    ious = box_iou(
        torch.tensor([box], dtype=torch.float32), torch.tensor(others, dtype=torch.float32)
    )
    return bool((ious >= SAME_FACE_IOU).any())


def _suggestions(image: Image, faces: list[Face]) -> dict[int, dict[str, Any]]:
    """Who each unnamed face looks like among the people of the photo's dataset."""
    try:
        verifier = active_verifier()
    except FaceError:
        return {}
    pending = [f for f in faces if f.subject_id is None and f.embedding_version_id == verifier.pk]
    if not pending:
        return {}
    loaded = load_gallery(verifier, image.dataset)
    threshold = calibrated_threshold(verifier) or 1.0
    queries = np.stack([np.asarray(f.get_embedding()) for f in pending])  # (Q, d)
    answers = match_embeddings(
        loaded, queries, recognition_threshold(verifier, threshold), top_k=3, scale=threshold
    )
    return {f.pk: answer for f, answer in zip(pending, answers, strict=True)}


def faces_json(image: Image) -> dict[str, Any]:
    """The photo's faces with their labels and suggestions, and the people to choose from."""
    faces = list(image.faces.select_related("subject").order_by("pk"))
    suggested = _suggestions(image, faces)
    return {
        "image": image.pk,
        "faces": [
            {
                "id": f.pk,
                "box": None if f.box is None else [round(v, 1) for v in f.box],
                "score": round(f.score, 4),
                "origin": f.origin,
                "label": f.label,
                "subject": None
                if f.subject is None
                else {"id": f.subject.pk, "name": f.subject.name},
                "warnings": f.warnings,
                "suggestion": suggested.get(f.pk),
            }
            for f in faces
        ],
        "subjects": [
            {"id": pk, "name": name}
            for pk, name in Subject.objects.filter(dataset=image.dataset_id)
            .order_by("name")
            .values_list("pk", "name")
        ],
    }


def label_face(
    face: Face,
    label: str,
    *,
    subject_id: int | None = None,
    new_subject: str | None = None,
    user: User | None = None,
) -> Face:
    """Say who a face is (``person`` with a subject of the photo's dataset, or a new one by
    name), that it is someone unknown, not a face, or not labelled yet.

    Raises:
        FaceError: an unknown label or subject (400/404), a person without a subject, the
            same person twice in one photo (409), a new name that exists (409).
    """
    if label not in FaceLabel.values:
        raise FaceError("invalid", f"label must be one of {', '.join(FaceLabel.values)}.")
    dataset = face.image.dataset
    subject: Subject | None = None
    if label == FaceLabel.PERSON:
        subject = _subject_for(dataset, subject_id, new_subject, user)
        twice = Face.objects.filter(image=face.image_id, subject=subject).exclude(pk=face.pk)
        if twice.exists():
            raise FaceError(
                "duplicate_face",
                f"“{subject.name}” is already another face in this photo.",
                status=409,
            )
    elif subject_id is not None or new_subject:
        raise FaceError("invalid", "Only a face labelled person has a subject.")
    Face.objects.filter(pk=face.pk).update(label=label, subject=subject)
    face.refresh_from_db()
    return face


def _subject_for(
    dataset: Any, subject_id: int | None, name: str | None, user: User | None
) -> Subject:
    if name:
        if dataset.pk == gallery_dataset().pk:
            return enrollment.create_subject(name, user)
        cleaned = " ".join(name.split())
        if Subject.objects.filter(dataset=dataset, name=cleaned).exists():
            raise FaceError("duplicate_subject", f"“{cleaned}” already exists.", status=409)
        return Subject.objects.create(dataset=dataset, name=cleaned, created_by=user)
    if subject_id is None:
        raise FaceError("invalid", "A face labelled person needs a subject or a new name.")
    subject = Subject.objects.filter(pk=subject_id, dataset=dataset).first()
    if subject is None:
        raise FaceError(
            "unknown_subject", f"No person {subject_id} in this photo's dataset.", status=404
        )
    return subject
