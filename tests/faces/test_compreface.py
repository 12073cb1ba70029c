"""CompreFace compatibility: its documented requests, over HTTP, get its documented answers.

Requests are built as CompreFace's REST API description shows them (x-api-key header,
multipart ``file`` / ``source_image`` / ``target_image``, base64 JSON bodies, query
parameters), against a live server whose jobs run in-process.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests
import yaml

from tests.faces.conftest import encode
from tests.openapi_check import assert_documented
from webapp.accounts.models import ApiToken
from webapp.faces.models import Face, Subject
from webapp.images.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cf(live_server, labeler, settings):
    """``cf(method, path, key=..., **requests_kwargs)`` against the live server. Every
    answer must be one our OpenAPI schema documents, status and body."""
    settings.JOBS_IN_PROCESS = True
    _, key = ApiToken.issue(labeler, "compreface")
    schema = yaml.safe_load(
        requests.get(
            f"{live_server.url}/api/v1/schema/", headers={"x-api-key": key}, timeout=60
        ).content
    )

    def call(method: str, path: str, *, api_key: str | None = key, **kwargs):
        headers = kwargs.pop("headers", {})
        if api_key is not None:
            headers["x-api-key"] = api_key
        response = requests.request(
            method, f"{live_server.url}{path}", headers=headers, timeout=60, **kwargs
        )
        assert_documented(schema, method, path, response.status_code, response.json())
        return response

    return call


def assert_box(box: dict, width: int, height: int) -> None:
    assert set(box) == {"probability", "x_min", "y_min", "x_max", "y_max"}
    assert all(isinstance(box[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
    assert 0 <= box["x_min"] < box["x_max"] <= width and 0 <= box["y_min"] < box["y_max"] <= height
    assert 0 <= box["probability"] <= 1


def test_the_documented_collection_workflow(cf, tiny_verifier, orl, admin_user):
    created = cf("POST", "/api/v1/recognition/subjects", json={"subject": "Marie"})
    assert created.status_code == 201 and created.json() == {"subject": "Marie"}
    added = cf(
        "POST", "/api/v1/recognition/faces?subject=Marie", files={"file": ("m.pgm", orl(1, 1))}
    )
    assert added.status_code == 201, added.json()
    marie_id = added.json()["image_id"]
    assert added.json() == {"image_id": marie_id, "subject": "Marie"}
    # A new subject is created by its first example, as CompreFace does.
    pierre = cf(
        "POST", "/api/v1/recognition/faces?subject=Pierre", files={"file": ("p.pgm", orl(2, 1))}
    )
    assert pierre.status_code == 201 and pierre.json()["subject"] == "Pierre"
    assert cf("GET", "/api/v1/recognition/subjects").json() == {"subjects": ["Marie", "Pierre"]}

    listing = cf("GET", "/api/v1/recognition/faces?page=0&size=1").json()
    assert listing["total_elements"] == 2 and listing["total_pages"] == 2
    assert listing["page_number"] == 0 and listing["page_size"] == 1
    assert listing["faces"] == [{"image_id": marie_id, "subject": "Marie"}]
    only = cf("GET", "/api/v1/recognition/faces?subject=Pierre").json()["faces"]
    assert [f["subject"] for f in only] == ["Pierre"]

    recognized = cf(
        "POST",
        "/api/v1/recognition/recognize?limit=0&prediction_count=2&det_prob_threshold=0.8",
        files={"file": ("q.pgm", orl(1, 1))},
    )
    assert recognized.status_code == 200, recognized.json()
    [face] = recognized.json()["result"]
    assert_box(face["box"], 92, 112)
    assert [s["subject"] for s in face["subjects"]] == ["Marie", "Pierre"]
    assert face["subjects"][0]["similarity"] == pytest.approx(1.0)
    assert 0 <= face["subjects"][1]["similarity"] < face["subjects"][0]["similarity"]

    renamed = cf("PUT", "/api/v1/recognition/subjects/Marie", json={"subject": "Marie Curie"})
    assert renamed.status_code == 200 and renamed.json() == {"updated": True}
    assert Subject.objects.filter(name="Marie Curie").exists()

    deleted = cf("DELETE", f"/api/v1/recognition/faces/{marie_id}")
    assert deleted.json() == {"image_id": marie_id, "subject": "Marie Curie"}
    gone = cf("DELETE", f"/api/v1/recognition/faces/{marie_id}")
    assert gone.status_code == 404 and gone.json()["code"] == 11
    assert cf("DELETE", "/api/v1/recognition/faces?subject=Pierre").json() == {"deleted": 1}
    assert cf("DELETE", "/api/v1/recognition/subjects/Marie Curie").json() == {
        "subject": "Marie Curie"
    }
    # One call would empty the gallery: labelers may not, admins may.
    refused = cf("DELETE", "/api/v1/recognition/subjects")
    assert refused.status_code == 403 and "needs the admin role" in refused.json()["message"]
    assert cf("DELETE", "/api/v1/recognition/faces").status_code == 403
    assert Subject.objects.count() == 1
    _, admin_key = ApiToken.issue(admin_user, "admin")
    everyone = cf("DELETE", "/api/v1/recognition/subjects", api_key=admin_key)
    assert everyone.json() == {"deleted": 1}
    assert not Subject.objects.exists() and not Face.objects.exists() and not Image.objects.exists()


def test_rename_onto_an_existing_subject_merges(cf, tiny_verifier, orl):
    for name, person in (("A", 3), ("B", 4)):
        cf(
            "POST",
            f"/api/v1/recognition/faces?subject={name}",
            files={"file": ("x.pgm", orl(person))},
        )
    merged = cf("PUT", "/api/v1/recognition/subjects/A", json={"subject": "B"})
    assert merged.json() == {"updated": True}
    assert cf("GET", "/api/v1/recognition/subjects").json() == {"subjects": ["B"]}
    assert Face.objects.filter(subject__name="B").count() == 2


def test_verification_service(cf, tiny_verifier, tiny_face_detector):
    rng = np.random.default_rng(4)
    group = encode(rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    response = cf(
        "POST",
        "/api/v1/verification/verify?limit=3",
        files={"source_image": ("s.png", group), "target_image": ("t.png", group)},
    )
    assert response.status_code == 200, response.json()
    [result] = response.json()["result"]
    assert_box(result["source_image_face"]["box"], 400, 300)
    matches = result["face_matches"]
    assert len(matches) == 3
    for match in matches:
        assert_box(match["box"], 400, 300)
    assert matches[0]["box"] == result["source_image_face"]["box"]
    assert matches[0]["similarity"] == pytest.approx(1.0)


def test_base64_json_bodies_are_accepted(cf, tiny_verifier, orl):
    encoded = base64.b64encode(orl(5)).decode()
    added = cf("POST", "/api/v1/recognition/faces?subject=Zoe", json={"file": encoded})
    assert added.status_code == 201, added.json()
    recognized = cf("POST", "/api/v1/recognition/recognize", json={"file": encoded})
    assert recognized.json()["result"][0]["subjects"][0]["subject"] == "Zoe"
    verified = cf(
        "POST",
        "/api/v1/verification/verify",
        json={"source_image": encoded, "target_image": base64.b64encode(orl(6)).decode()},
    )
    assert verified.status_code == 200 and len(verified.json()["result"][0]["face_matches"]) == 1


def test_errors_have_compreface_shape_and_codes(
    cf, tiny_verifier, blind_face_detector, orl, viewer
):
    wall = encode(np.full((300, 300, 3), 90, dtype=np.uint8))
    no_face = cf("POST", "/api/v1/recognition/recognize", files={"file": ("w.png", wall)})
    assert no_face.status_code == 400
    assert set(no_face.json()) == {"message", "code"} and no_face.json()["code"] == 28
    failed_add = cf(
        "POST", "/api/v1/recognition/faces?subject=Nobody", files={"file": ("w.png", wall)}
    )
    assert failed_add.status_code == 400 and failed_add.json()["code"] == 28
    assert not Subject.objects.exists()  # the subject its first example would have created
    big = encode(np.zeros((600, 800, 3), dtype=np.uint8))
    blind_face_detector.__class__.objects.filter(kind="face_detector").update(is_active=False)
    no_detector = cf(
        "POST", "/api/v1/recognition/faces?subject=Nobody", files={"file": ("b.png", big)}
    )
    assert no_detector.status_code == 503 and "face detector" in no_detector.json()["message"]
    assert not Subject.objects.exists()
    no_subject = cf("POST", "/api/v1/recognition/faces", files={"file": ("m.pgm", orl(1))})
    assert no_subject.status_code == 400 and no_subject.json()["code"] == 33
    assert "subject" in no_subject.json()["message"]
    no_file = cf("POST", "/api/v1/recognition/recognize")
    assert no_file.status_code == 400 and no_file.json()["code"] == 33
    corrupt = cf(
        "POST", "/api/v1/recognition/recognize", files={"file": ("x.jpg", b"\xff\xd8junk")}
    )
    assert corrupt.status_code == 400 and corrupt.json()["code"] == 21
    bad_limit = cf(
        "POST", "/api/v1/recognition/recognize?limit=-1", files={"file": ("m.pgm", orl(1))}
    )
    assert bad_limit.status_code == 400 and bad_limit.json()["code"] == 26
    unknown = cf("DELETE", "/api/v1/recognition/subjects/Ghost")
    assert unknown.status_code == 404 and "Ghost" in unknown.json()["message"]
    duplicate = [cf("POST", "/api/v1/recognition/subjects", json={"subject": "Twin"}) for _ in "ab"]
    assert [r.status_code for r in duplicate] == [201, 409]
    assert cf("GET", "/api/v1/recognition/subjects", api_key=None).status_code == 401
    wrong = cf("GET", "/api/v1/recognition/subjects", api_key="not-a-key")
    assert wrong.status_code == 401 and set(wrong.json()) == {"message", "code"}
    _, viewer_key = ApiToken.issue(viewer, "cf")
    assert cf("GET", "/api/v1/recognition/subjects", api_key=viewer_key).status_code == 200
    refused = cf("POST", "/api/v1/recognition/subjects", api_key=viewer_key, json={"subject": "V"})
    assert refused.status_code == 403 and refused.json()["code"] == 32
    assert Subject.objects.count() == 1 and not Face.objects.exists() and not Image.objects.exists()


def test_one_pair_reports_one_similarity_in_every_answer(cf, tiny_verifier, orl, client, labeler):
    """verify, recognize, and CompreFace's verify and recognize: the same similarity for the
    same two photos, on the scale where the calibrated threshold reads 0.85, although 1:K
    decides at a stricter distance than 1:1."""
    from inference.verification_metrics import distance_to_similarity
    from tests.faces.conftest import pixels_of, reference_distance
    from webapp.faces import services

    a, b = orl(1, 1), orl(1, 4)
    # Thresholds around this pair's distance: 1:1 accepts it, 1:K (stricter) does not.
    d = reference_distance(tiny_verifier, pixels_of(a), pixels_of(b))
    tiny_verifier.metrics = {
        **tiny_verifier.metrics,
        "threshold": 1.1 * d,
        "recognition_threshold": 0.7 * d,
    }
    tiny_verifier.save(update_fields=["metrics"])
    added = cf("POST", "/api/v1/recognition/faces?subject=Ann", files={"file": ("a.pgm", a)})
    assert added.status_code == 201, added.json()
    verified = services.verify_faces(pixels_of(a), pixels_of(b))
    [native] = services.recognize(pixels_of(b))["faces"]
    cf_verify = cf(
        "POST",
        "/api/v1/verification/verify",
        files={"source_image": ("a.pgm", a), "target_image": ("b.pgm", b)},
    ).json()["result"][0]["face_matches"][0]
    recognized = cf("POST", "/api/v1/recognition/recognize", files={"file": ("b.pgm", b)})
    cf_recognize = recognized.json()["result"][0]["subjects"][0]
    similarity = verified["similarity"]
    assert verified["verified"] is True and native["match"] is False
    assert similarity == pytest.approx(distance_to_similarity(1 / 1.1, 1.0), abs=0.02)  # 0.89
    assert similarity == pytest.approx(
        distance_to_similarity(verified["distance"], verified["threshold"]), abs=1e-5
    )
    # float32 embeddings of one photo, computed in different batches, differ by ~1e-4 here;
    # the similarity's slope at these distances turns that into well under 0.02. Anchored at
    # the recognition threshold instead, the old scale gave the 1:K answers 0.19.
    for other in (native["candidates"][0]["similarity"], cf_verify["similarity"]):
        assert other == pytest.approx(similarity, abs=0.02)
    assert cf_recognize["similarity"] == pytest.approx(similarity, abs=0.02)
    assert native["threshold"] == pytest.approx(0.7 * d, rel=1e-4)
    assert native["similarity_threshold"] == pytest.approx(
        distance_to_similarity(0.7, 1.1), abs=1e-4
    )
    assert distance_to_similarity(verified["threshold"], verified["threshold"]) == pytest.approx(
        0.85
    )
