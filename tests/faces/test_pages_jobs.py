"""Faces pages that wait for a model job: verify, recognize, enroll (jobs run in a thread)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.faces.conftest import EMBEDDING_ATOL, pixels_of, reference_distance
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _jobs_in_process(settings):
    settings.JOBS_IN_PROCESS = True


def photo(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def test_verify_two_identical_photos_is_the_same_person(client, viewer, tiny_verifier, orl):
    client.force_login(viewer)
    response = client.post(
        "/faces/verify/",
        {"source_image": photo(orl(1), "a.pgm"), "target_image": photo(orl(1), "b.pgm")},
    )
    html = response.content.decode()
    assert response.status_code == 200, html
    result = response.context["result"]
    assert result["distance"] < EMBEDDING_ATOL and result["verified"] is True
    assert '<h2 id="verdict" class="verdict same">Same person</h2>' in html
    shown = re.search(r'<dd id="distance">([\d.]+)</dd>', html)
    assert shown and float(shown.group(1)) == pytest.approx(result["distance"], abs=5e-5)
    similarity = re.search(r'<dd id="similarity">([\d.]+)%</dd>', html)
    assert similarity and float(similarity.group(1)) > 99.0
    assert "0.0150" in html and f"tiny-verifier-0 #{tiny_verifier.pk}" in html
    # ORL photos are small: no detector needed, each used whole, and the page says so.
    assert "First photo: " in html and "used whole" in html.lower()
    boxes = re.findall(r'<rect class="face compared inside" x="([\d.]+)" y="([\d.]+)" '
                       r'width="([\d.]+)" height="([\d.]+)"', html)  # fmt: skip
    assert boxes == [("0.00", "0.00", "92.00", "112.00")] * 2
    assert html.count("data:image/jpeg;base64,") == 2  # the PGMs are shown as JPEG
    assert Job.objects.get().status == "done"


def test_verify_two_people_shows_the_real_distance(client, viewer, tiny_verifier, orl):
    client.force_login(viewer)
    response = client.post(
        "/faces/verify/",
        {
            "source_image": photo(orl(1), "a.pgm"),
            "target_image": photo(orl(2), "b.pgm"),
            "threshold": "0.5",
        },
    )
    html = response.content.decode()
    expected = reference_distance(tiny_verifier, pixels_of(orl(1)), pixels_of(orl(2)))
    distance = response.context["result"]["distance"]
    assert distance == pytest.approx(expected, abs=EMBEDDING_ATOL)
    assert f'<dd id="distance">{distance:.4f}</dd>' in html
    verified = expected < 0.5
    assert ("Same person" if verified else "Different people") in html
    assert "0.5000" in html and "(given)" in html


def test_verify_with_no_face_found_is_explained(client, viewer, tiny_verifier, blind_face_detector):
    import numpy as np

    from tests.faces.conftest import encode

    client.force_login(viewer)
    wall = encode(np.full((300, 300, 3), 90, dtype=np.uint8))
    response = client.post(
        "/faces/verify/",
        {"source_image": photo(wall, "wall.png"), "target_image": photo(wall, "wall.png")},
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert 'id="verify-error"' in html and "First photo: no face found" in html
    assert "Traceback" not in html


def test_enroll_then_recognize_from_the_pages(client, labeler, tiny_verifier, orl):
    client.force_login(labeler)
    client.post("/faces/people/add/", {"name": "Alice"})
    alice = Subject.objects.get(name="Alice")
    response = client.post(
        f"/faces/people/{alice.pk}/enroll/",
        {"images": [photo(orl(1, 1), "a1.pgm"), photo(orl(1, 2), "a2.pgm")]},
        follow=True,
    )
    html = response.content.decode()
    assert "Enrolled 2 face(s) for “Alice”." in html
    assert Face.objects.filter(subject=alice).count() == 2
    assert html.count('class="face-thumb') == 2 and "2 enrolled faces" in html

    response = client.post("/faces/recognize/", {"image": photo(orl(1, 2), "who.pgm")})
    html = response.content.decode()
    assert response.status_code == 200, html
    face = response.context["result"]["faces"][0]
    assert face["match"] and face["label"] == "Alice" and face["distance"] < EMBEDDING_ATOL
    assert '<span class="face-label known inside"' in html and "1. Alice 100%" in html
    assert f'href="/faces/people/{alice.pk}/"' in html

    stranger = client.post(
        "/faces/recognize/", {"image": photo(orl(7, 1), "s7.pgm"), "threshold": "1e-9"}
    )
    assert stranger.context["result"]["faces"][0]["label"] == "unknown"
    assert "1. unknown" in stranger.content.decode()


def test_enroll_failure_enrolls_nothing(client, labeler, tiny_verifier, blind_face_detector):
    import numpy as np

    from tests.faces.conftest import encode

    client.force_login(labeler)
    bob = enrollment.create_subject("Bob")
    wall = encode(np.full((300, 300, 3), 90, dtype=np.uint8))
    response = client.post(
        f"/faces/people/{bob.pk}/enroll/", {"images": [photo(wall, "wall.png")]}, follow=True
    )
    html = response.content.decode()
    assert "Nothing was enrolled." in html and "no face found" in html
    assert not Face.objects.exists()
    assert services.gallery_dataset().images.count() == 0
