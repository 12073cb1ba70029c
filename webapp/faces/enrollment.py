"""The people of the recognition gallery: subjects, their enrolled faces, and enrollment.

Enrollment finds and embeds faces first (no writes), then stores photos and face rows in
one transaction, so a refused or failing photo enrolls none of its batch. Subjects live in
the gallery dataset (``settings.FACES_GALLERY_DATASET``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet

from inference.face_pipeline import FoundFace
from training.models import ModelVersion
from webapp.accounts.models import User
from webapp.faces.models import Face, FaceLabel, FaceOrigin, Subject
from webapp.faces.services import (
    FaceError,
    FaceModels,
    UploadedImage,
    find_faces,
    gallery_dataset,
    load_models,
)
from webapp.images.ingest import DuplicateImage, ingest_image
from webapp.images.models import Image


def subjects() -> QuerySet[Subject]:
    """Gallery subjects with ``face_count``, by name."""
    return Subject.objects.filter(dataset=gallery_dataset()).annotate(face_count=Count("faces"))


def get_subject(*, pk: int | None = None, name: str | None = None) -> Subject:
    """A gallery subject by id or name, or FaceError ``unknown_subject`` (404)."""
    found = (subjects().filter(pk=pk) if pk is not None else subjects().filter(name=name)).first()
    if found is None:
        what = f"id {pk}" if pk is not None else f"name “{name}”"
        raise FaceError("unknown_subject", f"No enrolled person with {what}.", status=404)
    return found


# A name as clean_name accepts it, for the OpenAPI schema: something besides white space, no
# control characters other than white space (tabs and newlines fold into one space), at
# most 255 characters (counted before folding, so the schema is the stricter one there).
_CONTROL = r"\u0000-\u0008\u000e-\u001b\u007f"
NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": 255,
    "pattern": rf"^[^{_CONTROL}]*[^\s{_CONTROL}\u001c-\u001f][^{_CONTROL}]*$",
}


def clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if any(ord(c) < 32 or ord(c) == 127 for c in cleaned):  # NUL: PostgreSQL refuses it
        raise FaceError(
            "invalid", "name: control characters are not allowed.", details={"field": "name"}
        )
    if not cleaned:
        raise FaceError(
            "invalid", "name: a subject needs a non-empty name.", details={"field": "name"}
        )
    if len(cleaned) > 255:
        raise FaceError("invalid", "name: at most 255 characters.", details={"field": "name"})
    return cleaned


def create_subject(name: str, user: User | None = None) -> Subject:
    """A new gallery subject, or FaceError ``duplicate_subject`` (409)."""
    cleaned = clean_name(name)
    try:
        with transaction.atomic():
            subject = Subject.objects.create(
                dataset=gallery_dataset(), name=cleaned, created_by=user
            )
    except IntegrityError:
        raise FaceError(
            "duplicate_subject", f"“{cleaned}” is already enrolled.", status=409
        ) from None
    return get_subject(pk=subject.pk)


def rename_subject(subject: Subject, new_name: str, *, merge: bool = False) -> Subject:
    """Rename; with ``merge`` an existing subject of that name takes over the faces."""
    cleaned = clean_name(new_name)
    with transaction.atomic():
        other = (
            Subject.objects.select_for_update()
            .filter(dataset=subject.dataset_id, name=cleaned)
            .exclude(pk=subject.pk)
            .first()
        )
        if other is not None and not merge:
            raise FaceError("duplicate_subject", f"“{cleaned}” is already enrolled.", status=409)
        if other is not None:
            _move_faces(subject, other)
            Subject.objects.filter(pk=subject.pk).delete()
            return get_subject(pk=other.pk)
        Subject.objects.filter(pk=subject.pk).update(name=cleaned)
    return get_subject(pk=subject.pk)


def _move_faces(source: Subject, target: Subject) -> None:
    """Give ``target`` the faces of ``source``, except on images ``target`` already has."""
    taken = set(Face.objects.filter(subject=target).values_list("image_id", flat=True))
    Face.objects.filter(subject=source).exclude(image_id__in=taken).update(subject=target)


def delete_subject(subject: Subject) -> int:
    """Delete a subject and its faces; returns how many faces went with it."""
    with transaction.atomic():
        image_ids = list(Face.objects.filter(subject=subject).values_list("image_id", flat=True))
        count = Face.objects.filter(subject=subject).count()
        subject.delete()
        _drop_unused_gallery_images(image_ids)
    return count


def delete_faces(faces: QuerySet[Face]) -> int:
    """Delete faces (and gallery images no face uses any more); returns the count."""
    with transaction.atomic():
        image_ids = list(faces.values_list("image_id", flat=True))
        count, _ = faces.delete()
        _drop_unused_gallery_images(image_ids)
    return int(count)


def _drop_unused_gallery_images(image_ids: list[int]) -> None:
    # An enrollment photo exists only for its faces; with none left it goes too. Its file
    # stays while any image row (in any dataset) has the same content.
    unused = Image.objects.filter(
        pk__in=set(image_ids), dataset=gallery_dataset(), faces__isnull=True
    )
    files = list(unused.values_list("sha256", "file", "thumbnail"))
    unused.delete()
    transaction.on_commit(lambda: _delete_unreferenced_files(files))


def _delete_unreferenced_files(files: list[tuple[str, str, str]]) -> None:
    for digest, *paths in files:
        if Image.objects.filter(sha256=digest).exists():
            continue
        for path in paths:
            if path:
                default_storage.delete(path)


# ---------------------------------------------------------------------------- enroll


@dataclass(frozen=True)
class _Prepared:
    upload: UploadedImage
    face: FoundFace
    found: int
    note: str | None
    origin: str


def enroll(
    subject: Subject,
    uploads: Sequence[UploadedImage],
    *,
    user: User | None = None,
    detect_faces: bool = True,
    box: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Enroll one face per photo (the largest, or ``box``) for ``subject``, all or nothing.

    The slow part (finding and embedding faces) runs before any write; the writes (image
    rows, face rows) are one transaction, so a failure on any photo enrolls none of them.

    Raises:
        FaceError: ``no_face`` (422), ``duplicate_face`` (409) when a photo is already
            enrolled for this subject, ``invalid`` when ``box`` is given for several photos.
    """
    if not uploads:
        raise FaceError("invalid", "image: send at least one photo.", details={"field": "image"})
    if box is not None and len(uploads) > 1:
        raise FaceError(
            "invalid", "box: give a box only with a single photo.", details={"field": "box"}
        )
    refuse_duplicates(subject, uploads)
    start = time.perf_counter()
    models = load_models()
    prepared = [_prepare(models, u, detect_faces=detect_faces, box=box) for u in uploads]
    embeddings = models.pipeline.embed([p.face.crop for p in prepared])  # (N, d)
    stored: list[Image] = []
    try:
        with transaction.atomic():
            faces = [
                _store_face(subject, p, e, models.verifier, user, stored)
                for p, e in zip(prepared, embeddings, strict=True)
            ]
    except Exception:
        _delete_unreferenced_files(
            [(i.sha256, i.file.name or "", i.thumbnail.name or "") for i in stored]
        )
        raise
    notes = [f"{p.upload.name or 'image'}: {p.note}" for p in prepared if p.note]
    notes += [
        f"{p.upload.name or 'image'}: {p.found} faces found; enrolled the largest."
        for p in prepared
        if p.found > 1 and box is None
    ]
    return {
        "subject": {"id": subject.pk, "name": subject.name},
        "faces": [face_json(f) for f in faces],
        "model_version": models.summary(),
        "inference_ms": round((time.perf_counter() - start) * 1000, 1),
        "notes": notes,
        "warnings": [f"{p.upload.name or 'image'}: {w}" for p in prepared for w in p.face.warnings],
    }


def refuse_duplicates(subject: Subject, uploads: Sequence[UploadedImage]) -> None:
    digests = [u.sha256 for u in uploads]
    if len(set(digests)) < len(digests):
        raise FaceError(
            "duplicate_face", "The same photo was sent twice in one request.", status=409
        )
    existing = (
        Face.objects.filter(subject=subject, image__sha256__in=digests)
        .values_list("pk", "image__sha256")
        .first()
    )
    if existing is not None:
        name = next(u.name for u in uploads if u.sha256 == existing[1]) or "this photo"
        raise FaceError(
            "duplicate_face",
            f"{name} is already enrolled for “{subject.name}” (face {existing[0]}).",
            status=409,
            details={"face_id": existing[0]},
        )


def _prepare(
    models: FaceModels, upload: UploadedImage, *, detect_faces: bool, box: Sequence[float] | None
) -> _Prepared:
    field = upload.name or "image"
    search = find_faces(models, upload.pixels, detect_faces=detect_faces, box=box, field=field)
    face = search.faces[0]
    human = box is not None or not detect_faces
    origin = FaceOrigin.HUMAN if human else FaceOrigin.MODEL
    return _Prepared(upload, face, len(search.faces), search.note, origin)


def _store_face(
    subject: Subject,
    prepared: _Prepared,
    embedding: npt.NDArray[np.float32],
    version: ModelVersion,
    user: User | None,
    stored: list[Image],
) -> Face:
    upload = prepared.upload
    try:
        image = ingest_image(
            upload.data, dataset=subject.dataset, user=user, original_name=upload.name
        )
        stored.append(image)
    except DuplicateImage as dup:
        image = dup.existing  # the photo is in the gallery for someone else: share it
    if Face.objects.filter(subject=subject, image=image).exists():
        raise FaceError(
            "duplicate_face",
            f"{upload.name or 'This photo'} is already enrolled for “{subject.name}”.",
            status=409,
        )
    whole = prepared.face.whole_image
    x1, y1, x2, y2 = (None,) * 4 if whole else prepared.face.box
    face = Face(
        image=image,
        subject=subject,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        score=prepared.face.score,
        origin=prepared.origin,
        warnings=list(prepared.face.warnings),
        label=FaceLabel.PERSON,
        created_by=user,
    )
    face.set_embedding(embedding, version.pk)
    face.save()
    return face


def face_json(face: Face) -> dict[str, Any]:
    """A stored face as the API shows it."""
    box = face.box
    return {
        "id": face.pk,
        "subject": face.subject_id,
        "image": face.image_id,
        "box": None if box is None else dict(zip(("x1", "y1", "x2", "y2"), box, strict=True)),
        "score": round(face.score, 4),
        "origin": face.origin,
        "warnings": list(face.warnings or []),
        "embedding_version": face.embedding_version_id,
        "created_at": face.created_at.isoformat(),
    }
