"""Labeling the faces of a photo: find them, name them, unknown, not a face; enrollment."""

from __future__ import annotations

import pytest

from tests.conftest import token_client
from tests.images import jpeg_bytes
from webapp.faces.models import Face, Subject
from webapp.faces.services import gallery_dataset, recognize
from webapp.images.ingest import ingest_image
from webapp.images.pixels import image_rgb
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job
from webapp.labeling.faces import find_faces_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo(labeler, tiny_verifier, tiny_face_detector):
    """A 400x300 photo in the recognition gallery's dataset, its faces found."""
    image = ingest_image(jpeg_bytes(400, 300, seed=11), dataset=gallery_dataset(), user=labeler)
    return image


def test_finding_faces_adds_them_once_pending_and_embedded(photo, tiny_verifier):
    first = find_faces_on(photo)
    assert first["added"] == first["found"] >= 2  # the untrained detector is confident
    faces = list(Face.objects.filter(image=photo))
    assert all(f.label == "pending" and f.subject is None for f in faces)
    assert all(f.embedding_version_id == tiny_verifier.pk for f in faces)
    again = find_faces_on(photo)
    assert again["added"] == 0 and Face.objects.filter(image=photo).count() == len(faces)


def test_the_find_job_runs_through_the_api(photo, labeler):
    api = token_client(labeler)
    response = api.post(f"/api/v1/images/{photo.pk}/faces/find/?wait=0")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.kind == "find_faces" and job.params == {"image": photo.pk}
    execute_job(job.pk)
    listed = api.get(f"/api/v1/images/{photo.pk}/faces/").json()
    assert len(listed["faces"]) == Job.objects.get(pk=job.pk).result["added"] > 0


def test_naming_a_face_in_the_gallery_enrols_it(photo, labeler):
    find_faces_on(photo)
    api = token_client(labeler)
    face = Face.objects.filter(image=photo).order_by("pk").first()
    url = f"/api/v1/images/{photo.pk}/faces/{face.pk}/"
    named = api.patch(url, {"label": "person", "new_subject": "  Ada  Lovelace "}, format="json")
    assert named.status_code == 200, named.json()
    ada = Subject.objects.get(name="Ada Lovelace", dataset=gallery_dataset())
    assert named.json()["face"]["subject"] == {"id": ada.pk, "name": "Ada Lovelace"}
    # Recognition now finds Ada in this very photo's face.
    result = recognize(image_rgb(photo), box=list(face.box), threshold=1e-3)
    assert result["faces"][0]["label"] == "Ada Lovelace"
    other = Face.objects.filter(image=photo).exclude(pk=face.pk).first()
    twice = api.patch(
        f"/api/v1/images/{photo.pk}/faces/{other.pk}/",
        {"label": "person", "subject": ada.pk},
        format="json",
    )
    assert twice.status_code == 409  # one person is one face of a photo
    gone = api.patch(
        f"/api/v1/images/{photo.pk}/faces/{other.pk}/", {"label": "not_face"}, format="json"
    )
    assert gone.json()["face"]["label"] == "not_face" and gone.json()["face"]["subject"] is None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"label": "person"}, 400),
        ({"label": "unknown", "subject": 1}, 400),
        ({"label": "martian"}, 400),
        ({"label": "person", "subject": 987654}, 404),
        ({"label": "person", "new_subject": "a\x00b"}, 400),
    ],
)
def test_bad_face_labels_are_refused_and_change_nothing(photo, labeler, body, status):
    find_faces_on(photo)
    face = Face.objects.filter(image=photo).first()
    response = token_client(labeler).patch(
        f"/api/v1/images/{photo.pk}/faces/{face.pk}/", body, format="json"
    )
    assert response.status_code == status, response.json()
    face.refresh_from_db()
    assert face.label == "pending" and face.subject is None


def test_viewers_cannot_label_faces(photo, viewer_api):
    find_faces_on(photo)
    face = Face.objects.filter(image=photo).first()
    response = viewer_api.patch(
        f"/api/v1/images/{photo.pk}/faces/{face.pk}/", {"label": "unknown"}, format="json"
    )
    assert response.status_code == 403
    assert viewer_api.post(f"/api/v1/images/{photo.pk}/faces/find/").status_code == 403
