"""Faces pages without model jobs: rendering per role, refusals, CSRF, the verifier report.

The pages that wait for a job (verify, recognize, enroll) are in test_pages_jobs.py.
"""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.conftest import make_tiny_verifier
from webapp.faces import enrollment, services
from webapp.faces.charts import roc_chart
from webapp.faces.models import Face, Subject
from webapp.faces.people_views import face_thumb
from webapp.images.ingest import ingest_image
from webapp.images.models import Image
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(tiny_verifier, orl, labeler):
    """A gallery person with one enrolled face (a whole ORL photo) flagged as blurry."""
    subject = enrollment.create_subject("Alice", labeler)
    enrollment.enroll(subject, [services.read_image(orl(1, 1), "a1.pgm")], user=labeler)
    Face.objects.filter(subject=subject).update(warnings=["blurry: sharpness 3.1 < 10"])
    return subject


def points_of(html: str, element_id: str) -> list[str]:
    found = re.search(rf'id="{element_id}" points="([^"]*)"', html)
    assert found, f"no #{element_id} with points"
    return found.group(1).split()


def test_every_page_renders_for_a_viewer(client, viewer, alice, tiny_verifier):
    client.force_login(viewer)
    face = Face.objects.get(subject=alice)
    pages = {
        "/faces/verify/": "Compare",
        "/faces/recognize/": "Recognize",
        "/faces/people/": "Alice",
        f"/faces/people/{alice.pk}/": "face #",
        "/faces/models/": tiny_verifier.name,
        f"/faces/models/{tiny_verifier.pk}/": "ROC curve",
    }
    for url, text in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert text in response.content.decode(), url
    people = client.get("/faces/people/").content.decode()
    assert 'class="face-thumb warned"' in people and "⚠ 1" in people
    assert f"/media/{face.image.thumbnail.name}" in people  # its thumbnail is as sharp
    person = client.get(f"/faces/people/{alice.pk}/").content.decode()
    assert "blurry: sharpness 3.1" in person
    for edit_only in ("enroll-form", "add-person", "delete-person", "Remove</button>"):
        assert edit_only not in person + people
    assert 'id="activate"' not in client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode()


def test_nav_links_to_the_faces_pages(client, viewer):
    client.force_login(viewer)
    html = client.get("/").content.decode()
    # Models: the one registry page for every kind (training's), which links each version.
    for url in ("/faces/verify/", "/faces/recognize/", "/faces/people/", "/training/models/"):
        assert f'href="{url}"' in html


def test_pages_need_login(client):
    for url in ("/faces/verify/", "/faces/people/", "/faces/models/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_viewer_cannot_enroll_rename_or_delete(client, viewer, alice, orl):
    client.force_login(viewer)
    face = Face.objects.get(subject=alice)
    posts = [
        ("/faces/people/add/", {"name": "Mallory"}),
        (f"/faces/people/{alice.pk}/enroll/", {"images": SimpleUploadedFile("b.pgm", orl(2))}),
        (f"/faces/people/{alice.pk}/rename/", {"name": "Eve"}),
        (f"/faces/people/{alice.pk}/delete/", {}),
        (f"/faces/faces/{face.pk}/delete/", {}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "Your role (viewer) cannot" in response.content.decode()
    assert list(Subject.objects.values_list("name", flat=True)) == ["Alice"]
    assert Face.objects.count() == 1 and not Job.objects.exists()


def test_only_admins_activate_a_verifier(client, labeler, admin_user, tiny_verifier):
    older = tiny_verifier
    newer = make_tiny_verifier(seed=1)  # now the active one
    client.force_login(labeler)
    assert client.post(f"/faces/models/{older.pk}/activate/").status_code == 403
    newer.refresh_from_db()
    assert newer.is_active
    client.force_login(admin_user)
    page = client.get(f"/faces/models/{older.pk}/").content.decode()
    assert 'id="activate"' in page
    response = client.post(f"/faces/models/{older.pk}/activate/", follow=True)
    assert response.status_code == 200
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.is_active and not newer.is_active
    assert 'id="active-badge"' in response.content.decode()


def test_activation_schedules_reembedding(client, admin_user, alice, tiny_verifier):
    newer = make_tiny_verifier(seed=1)
    tiny_verifier.activate()  # Alice's face is embedded by tiny_verifier; serve the other
    client.force_login(admin_user)
    response = client.post(f"/faces/models/{newer.pk}/activate/", follow=True)
    job = Job.objects.get(kind=services.REEMBED_JOB)
    assert job.params == {"verifier": newer.pk}
    assert f"re-embedded (job #{job.pk})" in response.content.decode()


def test_csrf_is_enforced_on_posts(labeler, alice, tiny_verifier):
    client = Client(enforce_csrf_checks=True)
    client.force_login(labeler)
    for url in (
        "/faces/people/add/",
        f"/faces/people/{alice.pk}/delete/",
        "/faces/verify/",
        "/faces/recognize/",
        f"/faces/models/{tiny_verifier.pk}/activate/",
    ):
        assert client.post(url, {"name": "Bob"}).status_code == 403, url
    assert list(Subject.objects.values_list("name", flat=True)) == ["Alice"]
    token = client.get("/faces/people/").context["csrf_token"]
    response = client.post("/faces/people/add/", {"name": "Bob", "csrfmiddlewaretoken": token})
    bob = Subject.objects.get(name="Bob")
    assert response.status_code == 302 and response["Location"] == f"/faces/people/{bob.pk}/"


def test_labeler_adds_renames_and_deletes_people(client, labeler, alice):
    client.force_login(labeler)
    response = client.post("/faces/people/add/", {"name": "  Bob   Smith "}, follow=True)
    bob = Subject.objects.get(name="Bob Smith")
    assert response.request["PATH_INFO"] == f"/faces/people/{bob.pk}/"
    again = client.post("/faces/people/add/", {"name": "Bob Smith"}, follow=True)
    assert "“Bob Smith” is already enrolled." in again.content.decode()
    refused = client.post(f"/faces/people/{bob.pk}/rename/", {"name": "Alice"}, follow=True)
    assert "already enrolled" in refused.content.decode()
    client.post(f"/faces/people/{bob.pk}/rename/", {"name": "Robert"})
    bob.refresh_from_db()
    assert bob.name == "Robert"
    client.post(f"/faces/people/{alice.pk}/rename/", {"name": "Robert", "merge": "on"})
    robert = Subject.objects.get()
    assert robert.pk == bob.pk and Face.objects.get().subject == robert
    response = client.post(f"/faces/people/{robert.pk}/delete/", follow=True)
    assert "Deleted “Robert” and 1 enrolled face(s)." in response.content.decode()
    assert not Subject.objects.exists() and not Face.objects.exists()


def test_labeler_removes_one_face(client, labeler, alice):
    client.force_login(labeler)
    face = Face.objects.get()
    response = client.post(f"/faces/faces/{face.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == f"/faces/people/{alice.pk}/"
    assert not Face.objects.exists() and Subject.objects.get() == alice
    assert client.post(f"/faces/faces/{face.pk}/delete/").status_code == 404


def test_faces_outside_the_gallery_are_not_removable(client, labeler, dataset, orl):
    client.force_login(labeler)
    image = ingest_image(orl(3), dataset=dataset, user=labeler)
    stranger = Subject.objects.create(dataset=dataset, name="s3")
    face = Face.objects.create(image=image, subject=stranger)
    assert client.post(f"/faces/faces/{face.pk}/delete/").status_code == 404
    assert client.get(f"/faces/people/{stranger.pk}/").status_code == 404
    assert Face.objects.filter(pk=face.pk).exists()


def test_thumbnail_box_is_a_square_around_the_face(client, viewer, alice):
    face = Face.objects.get()
    Face.objects.filter(pk=face.pk).update(x1=10, y1=20, x2=50, y2=80)
    client.force_login(viewer)
    html = client.get(f"/faces/people/{alice.pk}/").content.decode()
    # 60 px tall box with 30% margin: a 78 px square centred on (30, 50).
    assert 'viewBox="-9.0 11.0 78.0 78.0"' in html


def test_small_faces_in_big_photos_are_drawn_from_the_photo():
    photo = Image(width=4000, height=3000, file="images/p.png", thumbnail="thumbs/p.jpg")
    small = face_thumb(Face(image=photo, x1=100, y1=100, x2=400, y2=500))  # 24 px in thumb
    large = face_thumb(Face(image=photo, x1=100, y1=100, x2=1300, y2=1500))  # 96 px
    assert small["path"] == "images/p.png" and large["path"] == "thumbs/p.jpg"
    whole = face_thumb(Face(image=Image(width=92, height=112, file="images/o.png")))
    assert whole["path"] == "images/o.png"  # no thumbnail stored
    assert whole["viewbox"] == "0 0 92 112"  # a face crop is shown whole


# ---------------------------------------------------------------------------- report


def test_report_shows_the_real_numbers_and_roc(client, viewer, tiny_verifier):
    calibration = tiny_verifier.metrics["calibration"]
    client.force_login(viewer)
    html = client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode()
    assert f'<dd id="eer">{calibration["eer"] * 100:.2f}%</dd>' in html
    assert f'<dd id="auc">{calibration["auc"]:.4f}</dd>' in html
    assert f"{calibration['tar_at_far_1pct'] * 100:.1f}%" in html
    assert '<svg class="chart" id="roc-chart"' in html
    roc = points_of(html, "roc-line")
    assert len(roc) == len(calibration["roc_far"]) and f'data-count="{len(roc)}"' in html
    bins = len(calibration["hist_same"])
    assert len(points_of(html, "hist-same")) == len(points_of(html, "hist-different"))
    assert len(points_of(html, "hist-same")) == 2 * bins + 2
    assert html.count('class="vline') == 2  # the EER threshold and the serving one
    assert "0.0150" in html and "(eer)" in html


def test_recognition_threshold_is_shown_where_it_applies(client, viewer, tiny_verifier):
    tiny_verifier.metrics = {
        **tiny_verifier.metrics,
        "recognition_threshold": 0.01,
        "recognition_threshold_rule": "far=0.01",
    }
    tiny_verifier.save()
    client.force_login(viewer)
    report = client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode()
    assert '<dd id="recognition-threshold">0.0100 <span class="hint">(far=0.01)' in report
    assert report.count('class="vline') == 3
    recognize = client.get("/faces/recognize/").content.decode()
    assert 'placeholder="0.0100"' in recognize and "threshold 0.0100 (far=0.01)" in recognize
    verify = client.get("/faces/verify/").content.decode()
    assert 'placeholder="0.0150"' in verify and "threshold 0.0150 (eer)" in verify


def test_roc_points_follow_the_metrics_on_both_axes(client, viewer, tiny_verifier):
    calibration = tiny_verifier.metrics["calibration"]
    client.force_login(viewer)
    linear = points_of(
        client.get(f"/faces/models/{tiny_verifier.pk}/?far=linear").content.decode(), "roc-line"
    )
    xs = [float(p.split(",")[0]) for p in linear]
    ys = [float(p.split(",")[1]) for p in linear]
    # Frame: plot from x=58 to 502 and y=294 (TAR 0) to 14 (TAR 1).
    for x, y, far, tar in zip(xs, ys, calibration["roc_far"], calibration["roc_tar"], strict=True):
        assert x == pytest.approx(58 + far * 444, abs=0.01)
        assert y == pytest.approx(294 - tar * 280, abs=0.01)
    log = points_of(client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode(), "roc-line")
    assert len(log) == len(linear) and xs == sorted(xs)


def test_report_without_calibration_says_so(client, viewer, tiny_verifier):
    tiny_verifier.metrics = {"threshold": 0.5}
    tiny_verifier.save()
    client.force_login(viewer)
    html = client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode()
    assert "Not calibrated" in html and "threshold 0.5000" in html and "<svg" not in html
    tiny_verifier.metrics = {"calibration": {"eer": 0.1, "roc_far": "oops"}}
    tiny_verifier.save()
    html = client.get(f"/faces/models/{tiny_verifier.pk}/").content.decode()
    assert "Not calibrated" in html and "missing" in html
    listing = client.get("/faces/models/").content.decode()
    assert "not calibrated" in listing


def test_a_detector_has_its_own_report_and_an_unknown_version_none(client, viewer, tiny_detector):
    client.force_login(viewer)
    page = client.get(f"/faces/models/{tiny_detector.pk}/")
    assert page.status_code == 200 and "Score calibration" in page.content.decode()
    assert "ROC curve" not in page.content.decode()
    assert client.get(f"/faces/models/{tiny_detector.pk + 1000}/").status_code == 404


# ---------------------------------------------------------------------------- refusals


def test_verify_refusals_are_plain_words(client, viewer, tiny_verifier, orl):
    client.force_login(viewer)
    cases = [
        ({"source_image": SimpleUploadedFile("a.pgm", orl(1))}, "Second photo: This field"),
        (
            {
                "source_image": SimpleUploadedFile("a.pgm", orl(1)),
                "target_image": SimpleUploadedFile("notes.jpg", b"only text\n" * 40),
            },
            "Second photo: ",
        ),
        (
            {
                "source_image": SimpleUploadedFile("a.pgm", orl(1)),
                "target_image": SimpleUploadedFile("b.pgm", orl(2)),
                "threshold": "-1",
            },
            "Threshold: The threshold must be a number above 0.",
        ),
    ]
    for data, message in cases:
        response = client.post("/faces/verify/", data)
        html = response.content.decode()
        assert response.status_code == 400, message
        assert 'id="verify-error"' in html and message in html
        assert "Traceback" not in html and "target_image" not in html.split("verify-error")[1][:200]
    assert not Job.objects.exists()


def test_verify_without_a_verifier_says_what_to_do(client, viewer, orl):
    client.force_login(viewer)
    assert "No face verifier is active yet" in client.get("/faces/verify/").content.decode()
    response = client.post(
        "/faces/verify/",
        {
            "source_image": SimpleUploadedFile("a.pgm", orl(1)),
            "target_image": SimpleUploadedFile("b.pgm", orl(2)),
        },
    )
    assert response.status_code == 503
    assert "No face verifier is active yet" in response.content.decode()


def test_a_large_photo_needs_a_face_detector(client, viewer, tiny_verifier):
    from tests.images import jpeg_bytes

    client.force_login(viewer)
    response = client.post(
        "/faces/recognize/", {"image": SimpleUploadedFile("big.jpg", jpeg_bytes(400, 300))}
    )
    html = response.content.decode()
    assert response.status_code == 503 and "Photo: no face detector is active" in html
    assert not Job.objects.exists()


def test_enroll_refuses_a_photo_already_enrolled(client, labeler, alice, orl):
    client.force_login(labeler)
    response = client.post(
        f"/faces/people/{alice.pk}/enroll/",
        {"images": SimpleUploadedFile("again.pgm", orl(1, 1))},
        follow=True,
    )
    html = response.content.decode()
    assert "Nothing was enrolled." in html and "already enrolled for “Alice”" in html
    assert Face.objects.count() == 1 and not Job.objects.exists()


def test_log_far_axis_places_points_by_decade():
    calibration = {
        "roc_far": [0.0, 0.001, 0.01, 0.1, 1.0],
        "roc_tar": [0.0, 0.5, 0.8, 0.9, 1.0],
        "roc_thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
        "eer": 0.1,
        "tar_at_far_1pct": 0.8,
        "threshold_far_1pct": 0.3,
        "tar_at_far_01pct": 0.5,
        "threshold_far_01pct": 0.2,
    }
    chart = roc_chart(calibration, log_far=True)
    xs = [float(p.split(",")[0]) for p in chart.points.split()]
    # Three decades (0.1% .. 100%) over 444 units from x=58; FAR 0 sits on the left edge.
    assert xs == pytest.approx([58, 58, 58 + 148, 58 + 296, 502], abs=0.01)
    assert [t.label for t in chart.x_ticks] == ["0.1%", "1%", "10%", "100%"]
    assert [m.label for m in chart.markers] == [
        "EER 10.00%",
        "FAR 1%: TAR 80.0%",
        "FAR 0.1%: TAR 50.0%",
    ]


def test_the_no_detector_advice_names_the_pages_own_checkbox(client, viewer, tiny_verifier):
    """The API says `detect_faces=false`; the page has a checkbox for that, so it says so."""
    from tests.images import jpeg_bytes

    client.force_login(viewer)
    big = SimpleUploadedFile("big.jpg", jpeg_bytes(640, 480))
    response = client.post(
        "/faces/verify/",
        {
            "source_image": big,
            "target_image": SimpleUploadedFile("b.jpg", jpeg_bytes(640, 480, seed=2)),
        },
    )
    html = response.content.decode()
    assert response.status_code == 503
    assert "First photo: no face detector is active" in html
    assert "with “These images are face crops” ticked" in html and "detect_faces" not in html
    assert Job.objects.count() == 0
