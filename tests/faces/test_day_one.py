"""Day one: after ``load_demo`` the shipped face models verify and recognise people they never
saw, enrolled from ordinary photos, with the dlib backbone as the served default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from inference.runtime import sha256_file
from tests.faces.conftest import pixels_of
from training.models import ModelKind, ModelVersion
from webapp.faces import enrollment, services

pytestmark = pytest.mark.django_db
MODELS = Path(__file__).resolve().parents[2] / "demo" / "models"


def test_the_shipped_cards_match_their_weights_and_record_the_backbone() -> None:
    for stem in ("face-detector", "verifier-dlib", "verifier-orl"):
        card = json.loads((MODELS / f"{stem}.json").read_text())
        assert card["sha256"] == sha256_file(MODELS / f"{stem}.safetensors"), stem
    dlib = json.loads((MODELS / "verifier-dlib.json").read_text())
    backbone = dlib["config"]["backbone"]
    assert backbone["kind"] == "dlib" and len(backbone["sha256"]) == 64
    assert dlib["command"].startswith("python manage.py train_verifier --dataset orl")
    assert "--backbone dlib" in dlib["command"]


def test_strangers_enrolled_from_photos_are_verified_and_recognised(orl) -> None:
    call_command("load_demo")
    served = ModelVersion.active(ModelKind.VERIFIER)
    assert served is not None and served.config["backbone"]["kind"] == "dlib"
    # ORL people 31-36: none of them is a demo person (s2, s3, s7, s23, s28).
    people = range(31, 37)
    for person in people:
        subject = enrollment.create_subject(f"person-{person}")
        enrollment.enroll(
            subject, [services.read_image(orl(person, k), f"{k}.pgm") for k in (1, 2)]
        )
    correct = 0
    for person in people:
        [face] = services.recognize(pixels_of(orl(person, 7)))["faces"]
        correct += face["label"] == f"person-{person}"
    assert correct >= 5  # measured 6 of 6
    same = services.verify_faces(pixels_of(orl(31, 3)), pixels_of(orl(31, 9)))
    other = services.verify_faces(pixels_of(orl(31, 3)), pixels_of(orl(32, 3)))
    assert same["verified"] is True and other["verified"] is False
    assert same["similarity"] > 0.85 > other["similarity"]
    assert same["model_version"]["id"] == served.pk


@pytest.mark.django_db(transaction=True)
def test_the_pages_show_the_served_backbone_verifier(client, labeler, orl, settings) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.JOBS_IN_PROCESS = True  # the verify page waits for its job
    call_command("load_demo")
    served = ModelVersion.active(ModelKind.VERIFIER)
    assert served is not None
    client.force_login(labeler)
    listing = client.get("/faces/models/")
    assert listing.status_code == 200 and served.name in listing.content.decode()
    report = client.get(f"/faces/models/{served.pk}/")
    assert report.status_code == 200 and "EER" in report.content.decode()
    answer = client.post(
        "/faces/verify/",
        {
            "source_image": SimpleUploadedFile("a.pgm", orl(33, 1)),
            "target_image": SimpleUploadedFile("b.pgm", orl(33, 6)),
        },
    )
    html = answer.content.decode()
    assert answer.status_code == 200 and "Same person" in html, html[html.find("<main") :][:1500]
    assert answer.context["result"]["verified"] is True
    assert answer.context["result"]["similarity"] > 0.85
