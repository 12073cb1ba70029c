"""Pages for the people of the recognition gallery: list, person, enroll, rename, delete.

Bookkeeping (add, rename, delete, remove a face) calls :mod:`webapp.faces.enrollment`
directly; enrolling needs the verifier, so it runs the API's ``enroll`` job and waits for it
like the verify page. Everyone signed in may look; labelers and admins may change.

A face's thumbnail is an SVG whose ``viewBox`` is a square around the face box, over the
stored photo drawn at its original pixel size: no crop is ever stored.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from training.models import ModelKind, ModelVersion
from webapp.accounts.models import signed_in_user
from webapp.accounts.permissions import user_can_edit
from webapp.faces import enrollment, services
from webapp.faces.api import enrollment_params, read_upload
from webapp.faces.models import Face, Subject
from webapp.faces.services import FaceError
from webapp.faces.views import forbidden, form_error, plain, run_page_job
from webapp.jobs.errors import JobError
from webapp.jobs.models import JobKind

PEOPLE_PAGE_SIZE = 40
FACES_PER_ROW = 8
# ingest.make_thumbnail's size: a face at least THUMB_MIN_FACE_PX wide in a thumbnail of
# that size is drawn from the thumbnail; a smaller one from the photo, to stay sharp.
THUMBNAIL_PX = 320
THUMB_MIN_FACE_PX = 64
THUMB_MARGIN = 0.3


def face_thumb(face: Face) -> dict[str, Any]:
    """What the template needs to draw ``face`` as a square crop of its stored photo."""
    image = face.image
    x1, y1, x2, y2 = face.box or (0.0, 0.0, float(image.width), float(image.height))
    if face.box is None:  # the photo is the face crop: show all of it, no margin
        viewbox = f"0 0 {image.width} {image.height}"
    else:
        side = max(x2 - x1, y2 - y1) * (1 + THUMB_MARGIN)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        viewbox = f"{cx - side / 2:.1f} {cy - side / 2:.1f} {side:.1f} {side:.1f}"
    scale = min(1.0, THUMBNAIL_PX / max(image.width, image.height))
    use_thumb = bool(image.thumbnail) and (x2 - x1) * scale >= THUMB_MIN_FACE_PX
    return {
        "face": face,
        "viewbox": viewbox,
        "path": image.thumbnail.name if use_thumb else image.file.name,
        "width": image.width,
        "height": image.height,
        "warnings": [str(w) for w in face.warnings or []],
    }


def _gallery_subjects() -> Any:
    return (
        enrollment.subjects()
        .annotate(warned=Count("faces", filter=~Q(faces__warnings=[])))
        .order_by("name")
    )


def _get_subject(subject_id: int) -> Subject:
    try:
        return enrollment.get_subject(pk=subject_id)
    except FaceError:
        raise Http404("No such person in the gallery.") from None


# ---------------------------------------------------------------------------- pages


@require_GET
def people_page(request: HttpRequest) -> HttpResponse:
    try:
        subjects = _gallery_subjects()
    except FaceError as exc:  # a misconfigured gallery dataset
        return render(request, "faces/people.html", {"error": exc.message}, status=exc.status)
    page = Paginator(subjects, PEOPLE_PAGE_SIZE).get_page(request.GET.get("page"))
    faces = Face.objects.select_related("image").order_by("id")
    people = Subject.objects.filter(pk__in=[s.pk for s in page.object_list]).prefetch_related(
        Prefetch("faces", queryset=faces)
    )
    thumbs = {p.pk: [face_thumb(f) for f in list(p.faces.all())[:FACES_PER_ROW]] for p in people}
    rows = [{"subject": s, "thumbs": thumbs.get(s.pk, [])} for s in page.object_list]
    return render(
        request,
        "faces/people.html",
        {
            "page": page,
            "rows": rows,
            "can_edit": user_can_edit(request.user),
            "gallery": services.gallery_dataset(),
        },
    )


@require_GET
def person_page(request: HttpRequest, subject_id: int) -> HttpResponse:
    subject = _get_subject(subject_id)
    verifier = ModelVersion.active(ModelKind.VERIFIER)
    faces = Face.objects.filter(subject=subject).select_related("image").order_by("id")
    thumbs = [
        {**face_thumb(f), "stale": verifier is None or f.embedding_version_id != verifier.pk}
        for f in faces
    ]
    return render(
        request,
        "faces/person.html",
        {
            "subject": subject,
            "thumbs": thumbs,
            "can_edit": user_can_edit(request.user),
            "verifier": verifier,
            "stale": sum(t["stale"] for t in thumbs),
        },
    )


# ---------------------------------------------------------------------------- changes


class NameForm(forms.Form):
    name = forms.CharField(max_length=255, label="Name")
    merge = forms.BooleanField(required=False)


def _posted_name(request: HttpRequest) -> dict[str, Any]:
    """The posted name form's values, or its first error as a FaceError."""
    form = NameForm(request.POST)
    if not form.is_valid():
        raise form_error(form)
    return dict(form.cleaned_data)


@require_POST
def person_add(request: HttpRequest) -> HttpResponse:
    if not user_can_edit(request.user):
        return forbidden(request, "add people")
    try:
        name = _posted_name(request)["name"]
        subject = enrollment.create_subject(name, signed_in_user(request.user))
    except FaceError as exc:
        messages.error(request, exc.message)
        return redirect("faces:people")
    messages.success(request, f"Added “{subject.name}”. Now enroll a few photos of them.")
    return redirect("faces:person", subject.pk)


@require_POST
def person_rename(request: HttpRequest, subject_id: int) -> HttpResponse:
    if not user_can_edit(request.user):
        return forbidden(request, "rename people")
    subject = _get_subject(subject_id)
    try:
        data = _posted_name(request)
        renamed = enrollment.rename_subject(subject, data["name"], merge=data["merge"])
    except FaceError as exc:
        messages.error(request, exc.message)
        return redirect("faces:person", subject.pk)
    if renamed.pk != subject.pk:
        messages.success(request, f"Merged “{subject.name}” into “{renamed.name}”.")
    else:
        messages.success(request, f"Renamed “{subject.name}” to “{renamed.name}”.")
    return redirect("faces:person", renamed.pk)


@require_POST
def person_delete(request: HttpRequest, subject_id: int) -> HttpResponse:
    if not user_can_edit(request.user):
        return forbidden(request, "delete people")
    subject = _get_subject(subject_id)
    count = enrollment.delete_subject(subject)
    messages.success(request, f"Deleted “{subject.name}” and {count} enrolled face(s).")
    return redirect("faces:people")


@require_POST
def face_delete(request: HttpRequest, face_id: int) -> HttpResponse:
    if not user_can_edit(request.user):
        return forbidden(request, "remove faces")
    face = Face.objects.filter(pk=face_id, subject__dataset=services.gallery_dataset()).first()
    if face is None or face.subject_id is None:
        raise Http404("No such enrolled face.")
    enrollment.delete_faces(Face.objects.filter(pk=face.pk))
    messages.success(request, f"Removed face #{face_id}.")
    return redirect("faces:person", face.subject_id)


class EnrollForm(forms.Form):
    face_crops = forms.BooleanField(required=False, label="These images are face crops")


def _enroll(request: HttpRequest, subject: Subject) -> str:
    """Run the enroll job for the posted photos; returns what to tell the person."""
    files = request.FILES.getlist("images")
    if not files:
        raise FaceError("invalid", "Choose at least one photo to enroll.")
    form = EnrollForm(request.POST)
    if not form.is_valid():
        raise form_error(form)
    photos = [read_upload(f, f.name or "image") for f in files]
    options = {"detect_faces": not form.cleaned_data["face_crops"]}
    params = enrollment_params(subject, photos, options)
    job, result = run_page_job(request, JobKind.ENROLL, params)
    if result is None:
        return (
            f"Enrolling as job #{job.pk}, still waiting for a worker; the faces appear here "
            "when it is done (see Jobs)."
        )
    for line in [*result.get("notes", []), *result.get("warnings", [])]:
        messages.warning(request, line)
    return f"Enrolled {len(result.get('faces', []))} face(s) for “{subject.name}”."


@require_POST
def person_enroll(request: HttpRequest, subject_id: int) -> HttpResponse:
    if not user_can_edit(request.user):
        return forbidden(request, "enroll faces")
    subject = _get_subject(subject_id)
    try:
        messages.success(request, _enroll(request, subject))
    except JobError as exc:
        messages.error(request, f"Nothing was enrolled. {plain(exc.message)}")
    return redirect("faces:person", subject.pk)
