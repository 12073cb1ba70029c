"""1:K recognition: the right person or "unknown", candidates, and a 10,000-face gallery."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_tiny_verifier
from tests.faces.conftest import EMBEDDING_ATOL, pixels_of, reference_embedding
from tests.images import jpeg_bytes
from webapp.faces import enrollment, services
from webapp.faces.models import Face, Subject
from webapp.images.ingest import ingest_image
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def enrolled(tiny_verifier, orl):
    """Persons 1-3 of ORL enrolled from their first two photos."""
    people = {}
    for person in (1, 2, 3):
        subject = enrollment.create_subject(f"person-{person}")
        enrollment.enroll(
            subject, [services.read_image(orl(person, k), f"{k}.pgm") for k in (1, 2)]
        )
        people[person] = subject
    return people


def test_an_enrolled_photo_is_recognised_at_distance_zero(enrolled, orl):
    result = services.recognize(pixels_of(orl(2, 2)))
    [face] = result["faces"]
    assert face["match"] is True and face["label"] == "person-2"
    assert face["subject"] == {"id": enrolled[2].pk, "name": "person-2"}
    assert face["distance"] < EMBEDDING_ATOL and face["similarity"] > 0.99
    assert result["gallery"] == {"faces": 6, "subjects": 3, "stale_faces": 0}


def test_candidates_are_ranked_with_reference_distances(enrolled, orl, tiny_verifier):
    query = pixels_of(orl(1, 3))  # not enrolled: the third photo of person 1
    result = services.recognize(query, top_k=3)
    [face] = result["faces"]
    q = reference_embedding(tiny_verifier, query)
    expected = {}
    for subject in enrolled.values():
        stored = [f.get_embedding() for f in Face.objects.filter(subject=subject)]
        expected[subject.name] = min(float(np.linalg.norm(q - e)) for e in stored)
    ranked = sorted(expected, key=expected.get)
    assert [c["subject"]["name"] for c in face["candidates"]] == ranked
    for c in face["candidates"]:
        assert c["distance"] == pytest.approx(expected[c["subject"]["name"]], abs=EMBEDDING_ATOL)
    best = expected[ranked[0]]
    assert face["match"] is (best < 0.015)
    assert face["label"] == (ranked[0] if best < 0.015 else "unknown")


def test_a_stranger_is_unknown(enrolled, orl):
    result = services.recognize(pixels_of(orl(30)), threshold=1e-4)
    [face] = result["faces"]
    assert face["match"] is False and face["subject"] is None and face["label"] == "unknown"
    assert face["distance"] > 1e-4 and face["similarity"] < 0.5
    assert face["candidates"][0]["subject"]["name"].startswith("person-")


def test_empty_gallery_answers_unknown_with_a_note(tiny_verifier, orl):
    result = services.recognize(pixels_of(orl(1)))
    assert result["faces"][0]["label"] == "unknown" and result["faces"][0]["candidates"] == []
    assert any("No one is enrolled" in n for n in result["notes"])


def test_limit_and_min_score(tiny_verifier, tiny_face_detector, enrolled):
    photo = np.random.default_rng(2).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    everyone = services.recognize(photo)
    assert len(everyone["faces"]) > 3
    assert len(services.recognize(photo, limit=2)["faces"]) == 2
    cut = sorted(f["score"] for f in everyone["faces"])[len(everyone["faces"]) // 2]
    kept = services.recognize(photo, min_score=cut)["faces"]
    assert kept and min(f["score"] for f in kept) >= cut and len(kept) < len(everyone["faces"])


def test_faces_of_another_verifier_are_skipped_and_reembed_scheduled(enrolled, orl):
    newer = make_tiny_verifier(seed=1)  # activating a new verifier makes all six stale
    result = services.recognize(pixels_of(orl(2, 2)))
    assert result["gallery"] == {"faces": 0, "subjects": 0, "stale_faces": 6}
    assert result["faces"][0]["label"] == "unknown"
    assert any("embedded by another model" in n for n in result["notes"])
    job = Job.objects.get(kind="reembed")
    assert job.params == {"verifier": newer.pk} and job.status == "queued"


def test_ten_thousand_faces_answer_correctly(tiny_verifier, labeler):
    """1,000 people x 10 faces, written with bulk_create; queries near known people."""
    rng = np.random.default_rng(0)
    dim = 8
    gallery = services.gallery_dataset()
    photo = ingest_image(jpeg_bytes(), dataset=gallery, user=labeler)
    people = Subject.objects.bulk_create(
        [Subject(dataset=gallery, name=f"p{i:04d}") for i in range(1000)]
    )
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    faces = []
    for person, centre in zip(people, centres, strict=True):
        for _ in range(10):
            face = Face(image=photo, subject=person)
            face.set_embedding(centre + rng.normal(scale=0.002, size=dim), tiny_verifier.pk)
            faces.append(face)
    Face.objects.bulk_create(faces, batch_size=2000)
    assert Face.objects.count() == 10_000

    loaded = services.load_gallery(tiny_verifier)
    assert len(loaded.gallery) == 10_000 and loaded.gallery.subject_count == 1000
    asked = rng.choice(1000, size=200, replace=False)
    queries = centres[asked] + rng.normal(scale=0.002, size=(200, dim)).astype(np.float32)
    stranger = -centres[:1]
    assert np.linalg.norm(centres - stranger, axis=1).min() > 0.1  # far from everyone
    answers = services.match_embeddings(loaded, np.vstack([queries, stranger]), 0.015, top_k=2)
    names = [a["label"] for a in answers[:200]]
    assert names == [f"p{i:04d}" for i in asked]
    assert all(len(a["candidates"]) == 2 for a in answers)
    assert answers[200]["match"] is False and answers[200]["label"] == "unknown"
