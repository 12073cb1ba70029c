"""Enrollment: stored photos, face rows with embeddings, all or nothing, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from tests.faces.conftest import encode, pixels_of, reference_embedding
from tests.images import jpeg_bytes
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.faces.services import FaceError
from webapp.images.models import Image

pytestmark = pytest.mark.django_db


def upload(data: bytes, name: str = "photo.pgm"):
    return services.read_image(data, name)


def test_enroll_stores_photo_face_and_embedding(tiny_verifier, orl, labeler):
    alice = enrollment.create_subject("Alice", labeler)
    result = enrollment.enroll(alice, [upload(orl(1, 1), "a1.pgm")], user=labeler)
    face = Face.objects.get()
    assert result["faces"][0]["id"] == face.pk and result["subject"]["name"] == "Alice"
    assert face.subject == alice and face.box is None and face.origin == "model"
    assert face.embedding_version_id == tiny_verifier.pk and face.created_by == labeler
    image = face.image
    assert image.dataset == services.gallery_dataset() and image.dataset.name == "people"
    assert (image.width, image.height, image.original_name) == (92, 112, "a1.pgm")
    expected = reference_embedding(tiny_verifier, pixels_of(orl(1, 1)))
    np.testing.assert_allclose(face.get_embedding(), expected, atol=1e-5)
    assert default_storage.exists(image.file.name)
    assert enrollment.get_subject(pk=alice.pk).face_count == 1


def test_several_photos_at_once(tiny_verifier, orl):
    bob = enrollment.create_subject("Bob")
    result = enrollment.enroll(bob, [upload(orl(2, k), f"{k}.pgm") for k in (1, 2, 3)])
    assert len(result["faces"]) == 3
    assert Face.objects.filter(subject=bob).count() == 3 and Image.objects.count() == 3


def test_same_photo_twice_for_one_subject_is_409_and_adds_nothing(tiny_verifier, orl):
    carol = enrollment.create_subject("Carol")
    enrollment.enroll(carol, [upload(orl(3))])
    for batch in ([upload(orl(3))], [upload(orl(3, 2)), upload(orl(3))]):
        with pytest.raises(FaceError) as caught:
            enrollment.enroll(carol, batch)
        assert (caught.value.code, caught.value.status) == ("duplicate_face", 409)
    assert Face.objects.count() == 1 and Image.objects.count() == 1


def test_the_same_file_twice_in_one_request_is_409(tiny_verifier, orl):
    dave = enrollment.create_subject("Dave")
    with pytest.raises(FaceError) as caught:
        enrollment.enroll(dave, [upload(orl(4)), upload(orl(4))])
    assert caught.value.status == 409 and Face.objects.count() == 0


def test_one_photo_two_people_shares_the_stored_image(tiny_verifier, orl):
    group = upload(orl(5))
    erin, frank = enrollment.create_subject("Erin"), enrollment.create_subject("Frank")
    enrollment.enroll(erin, [group], box=[0, 0, 46, 112])
    enrollment.enroll(frank, [group], box=[46, 0, 92, 112])
    assert Image.objects.count() == 1
    boxes = {f.subject.name: f.box for f in Face.objects.select_related("subject")}
    assert boxes == {"Erin": (0.0, 0.0, 46.0, 112.0), "Frank": (46.0, 0.0, 92.0, 112.0)}
    assert set(Face.objects.values_list("origin", flat=True)) == {"human"}


def test_a_failing_photo_enrolls_none_of_the_batch(tiny_verifier, orl):
    gina = enrollment.create_subject("Gina")
    blank = upload(jpeg_bytes(640, 480, seed=1), "wall.jpg")  # large, and no face detector
    with pytest.raises(FaceError) as caught:
        enrollment.enroll(gina, [upload(orl(6)), blank])
    assert (caught.value.code, caught.value.status) == ("no_face_detector", 503)
    assert Face.objects.count() == 0 and Image.objects.count() == 0


def test_no_face_found_leaves_no_rows_and_no_files(tiny_verifier, blind_face_detector, orl):
    hank = enrollment.create_subject("Hank")
    photo = encode(np.full((300, 300, 3), 128, dtype=np.uint8))
    with pytest.raises(FaceError) as caught:
        enrollment.enroll(hank, [upload(orl(10)), upload(photo, "wall.png")])
    assert (caught.value.code, caught.value.status) == ("no_face", 422)
    assert "wall.png" in caught.value.message and "no face found" in caught.value.message
    assert Face.objects.count() == 0 and Image.objects.count() == 0


def test_box_with_several_photos_is_refused(tiny_verifier, orl):
    ivy = enrollment.create_subject("Ivy")
    with pytest.raises(FaceError) as caught:
        enrollment.enroll(ivy, [upload(orl(7)), upload(orl(7, 2))], box=[0, 0, 10, 10])
    assert caught.value.code == "invalid" and "box" in caught.value.message


def test_subject_names_are_unique_and_renames_can_merge(tiny_verifier, orl):
    jo = enrollment.create_subject("  Jo  ")
    assert jo.name == "Jo"
    with pytest.raises(FaceError) as caught:
        enrollment.create_subject("Jo")
    assert (caught.value.code, caught.value.status) == ("duplicate_subject", 409)
    jay = enrollment.create_subject("Jay")
    enrollment.enroll(jo, [upload(orl(8, 1))])
    enrollment.enroll(jay, [upload(orl(8, 2))])
    with pytest.raises(FaceError):
        enrollment.rename_subject(jay, "Jo")
    merged = enrollment.rename_subject(jay, "Jo", merge=True)
    assert merged.pk == jo.pk and merged.face_count == 2
    assert list(Subject.objects.values_list("name", flat=True)) == ["Jo"]


def test_deleting_faces_and_subjects_removes_unused_photos(tiny_verifier, orl):
    kim, lee = enrollment.create_subject("Kim"), enrollment.create_subject("Lee")
    shared = upload(orl(9))
    enrollment.enroll(kim, [shared], box=[0, 0, 46, 112])
    enrollment.enroll(lee, [shared], box=[46, 0, 92, 112])
    enrollment.enroll(kim, [upload(orl(9, 2))])
    assert Image.objects.count() == 2
    assert enrollment.delete_subject(kim) == 2
    assert Image.objects.count() == 1  # the shared photo still holds Lee's face
    assert enrollment.delete_faces(Face.objects.filter(subject=lee)) == 1
    assert Image.objects.count() == 0 and Subject.objects.count() == 1


def test_a_failure_while_writing_rolls_back_rows_and_new_files(tiny_verifier, orl, monkeypatch):
    """Fault injection: the second face row fails to save after the first photo was stored."""
    mia = enrollment.create_subject("Mia")
    saved = []
    real_save = Face.save

    def save_once(self, *args, **kwargs):
        if saved:
            raise RuntimeError("disk full")
        saved.append(self)
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(Face, "save", save_once)
    with pytest.raises(RuntimeError):
        enrollment.enroll(mia, [upload(orl(11, 1)), upload(orl(11, 2))])
    assert Face.objects.count() == 0 and Image.objects.count() == 0
    stored = default_storage.listdir("images")[0] if default_storage.exists("images") else []
    assert not any(default_storage.listdir(f"images/{d}")[1] for d in stored)


@pytest.mark.parametrize(
    "name",
    [
        *("Ann", " Marie  Curie ", "Zoë 2", "a" * 255, "tab\there", "two\nlines"),
        *("", "   ", "\t\n", "\x1c", "a\x00b", "bell\x07", "del\x7f", "a" * 256),
    ],
)
def test_the_schema_says_which_names_clean_name_accepts(name):
    """The OpenAPI schema's subject-name rule and the check the views apply agree."""
    import re

    rule = enrollment.NAME_SCHEMA
    # JSON Schema's \uXXXX escapes read as Python's here; maxLength counts the raw name.
    described = bool(re.search(rule["pattern"], name)) and len(name) <= rule["maxLength"]
    try:
        enrollment.clean_name(name)
        accepted = True
    except FaceError:
        accepted = False
    assert described == accepted
