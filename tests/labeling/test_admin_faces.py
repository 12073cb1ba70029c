"""The faces admin: subjects with face counts and their faces, faces with crops, labels,
subjects and filters."""

from __future__ import annotations

import pytest

from webapp.faces.models import Face, Subject
from webapp.images.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(dataset, make_image):
    """Two subjects: ann with two faces, bob with one; one pending face with no subject."""
    ann = Subject.objects.create(dataset=dataset, name="ann")
    bob = Subject.objects.create(dataset=dataset, name="bob")
    photos = [make_image(i, name=f"p{i}.jpg") for i in range(3)]
    faces = {
        "ann1": Face.objects.create(image=photos[0], subject=ann, label="person", origin="human"),
        "ann2": Face.objects.create(
            image=photos[1], subject=ann, label="person", x1=10, y1=10, x2=90, y2=100
        ),
        "bob_face": Face.objects.create(image=photos[2], subject=bob, label="person"),
        "pending": Face.objects.create(image=photos[2], x1=100, y1=10, x2=150, y2=70),
    }
    return {"ann": ann, "bob": bob, **faces}


def shown(client, url: str) -> list[int]:
    response = client.get(url)
    assert response.status_code == 200
    return sorted(f.pk for f in response.context["cl"].result_list)


def test_subjects_list_their_face_counts_and_faces(client, labeler, people):
    client.force_login(labeler)
    response = client.get("/admin/faces/subject/")
    counts = {s.name: s.faces_n for s in response.context["cl"].result_list}
    assert counts == {"ann": 2, "bob": 1}
    page = client.get(f"/admin/faces/subject/{people['ann'].pk}/change/")
    inline = page.context["inline_admin_formsets"][0].formset
    assert sorted(f.instance.pk for f in inline.forms) == sorted(
        [people["ann1"].pk, people["ann2"].pk]
    )
    assert page.content.decode().count('<svg class="wb-face"') == 2


def test_a_face_crop_is_a_window_onto_the_stored_photo(client, labeler, people):
    client.force_login(labeler)
    face = people["ann2"]
    body = client.get(f"/admin/faces/face/{face.pk}/change/").content.decode()
    # A square 1.3 times the box's long side, centred on the box (no crop file exists).
    assert 'viewBox="-8.5 -3.5 117.0 117.0"' in body
    # An 80 px face is sharp enough in the 320 px thumbnail; the photo is drawn in its pixels.
    assert f'href="/media/{face.image.thumbnail.name}"' in body
    assert 'width="200" height="150" preserveAspectRatio="none"' in body


def test_faces_filter_by_dataset_subject_label_and_origin(client, labeler, people):
    client.force_login(labeler)
    ann, bob = people["ann"], people["bob"]
    dataset = ann.dataset
    everyone = sorted(f.pk for f in Face.objects.all())
    other = Dataset.objects.create(name="other")
    assert shown(client, f"/admin/faces/face/?image__dataset__id__exact={dataset.pk}") == everyone
    assert shown(client, f"/admin/faces/face/?image__dataset__id__exact={other.pk}") == []
    ann_faces = sorted([people["ann1"].pk, people["ann2"].pk])
    assert shown(client, f"/admin/faces/face/?subject__id__exact={ann.pk}") == ann_faces
    assert shown(client, f"/admin/faces/face/?subject__id__exact={bob.pk}") == [
        people["bob_face"].pk
    ]
    assert shown(client, "/admin/faces/face/?label__exact=pending") == [people["pending"].pk]
    assert shown(client, "/admin/faces/face/?origin__exact=human") == [people["ann1"].pk]
    assert shown(client, "/admin/faces/face/?q=bob") == [people["bob_face"].pk]


def test_labels_and_subjects_stay_consistent(client, labeler, people):
    client.force_login(labeler)
    pending, bob = people["pending"], people["bob"]
    url = f"/admin/faces/face/{pending.pk}/change/"
    # Choosing the person labels the face a known person.
    assert client.post(url, {"subject": bob.pk, "label": "pending"}).status_code == 302
    pending.refresh_from_db()
    assert (pending.subject, pending.label) == (bob, "person")
    # "Not a face" while still assigned to bob is refused with the way out.
    refused = client.post(url, {"subject": bob.pk, "label": "not_face"})
    assert refused.status_code == 200
    assert "assigned to bob: clear the subject" in refused.content.decode()
    assert client.post(url, {"subject": "", "label": "not_face"}).status_code == 302
    pending.refresh_from_db()
    assert (pending.subject, pending.label) == (None, "not_face")
    refused = client.post(url, {"subject": "", "label": "person"})
    assert b"Choose the person" in refused.content
    assert Face.objects.get(pk=pending.pk).label == "not_face"


def test_the_list_edits_labels_with_the_same_checks(client, labeler, people):
    client.force_login(labeler)
    faces = list(Face.objects.order_by("pk"))
    data = {
        "form-TOTAL_FORMS": len(faces),
        "form-INITIAL_FORMS": len(faces),
        "_save": "Save",
    }
    for i, face in enumerate(faces):
        data[f"form-{i}-id"] = face.pk
        data[f"form-{i}-label"] = face.label
    pending_index = faces.index(people["pending"])
    data[f"form-{pending_index}-label"] = "unknown"
    assert client.post("/admin/faces/face/", data).status_code == 302
    assert Face.objects.get(pk=people["pending"].pk).label == "unknown"
    bob_index = faces.index(people["bob_face"])
    data[f"form-{bob_index}-label"] = "not_face"
    refused = client.post("/admin/faces/face/", data)
    assert refused.status_code == 200 and b"clear the subject" in refused.content
    assert Face.objects.get(pk=people["bob_face"].pk).label == "person"


def test_deleting_a_subject_takes_its_faces(client, labeler, people):
    client.force_login(labeler)
    ann = people["ann"]
    response = client.post(f"/admin/faces/subject/{ann.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Subject.objects.filter(pk=ann.pk).exists()
    assert sorted(Face.objects.values_list("pk", flat=True)) == sorted(
        [people["bob_face"].pk, people["pending"].pk]
    )


def test_viewer_cannot_relabel_a_face(client, viewer, people):
    client.force_login(viewer)
    face = people["pending"]
    url = f"/admin/faces/face/{face.pk}/change/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"subject": "", "label": "not_face"}).status_code == 403
    assert Face.objects.get(pk=face.pk).label == "pending"


def test_renaming_a_subject_to_a_taken_name_is_refused(client, labeler, people):
    client.force_login(labeler)
    ann = people["ann"]
    response = client.post(f"/admin/faces/subject/{ann.pk}/change/", {"name": "bob"})
    assert response.status_code == 200 and b"already has a person called bob" in response.content
    assert Subject.objects.get(pk=ann.pk).name == "ann"
