"""1:1 verification through the services: real distances against a reference embedder."""

from __future__ import annotations

import numpy as np
import pytest

from inference.verification_metrics import distance_to_similarity
from tests.faces.conftest import EMBEDDING_ATOL, encode, pixels_of, reference_distance
from webapp.faces import services
from webapp.faces.services import FaceError

pytestmark = pytest.mark.django_db


def test_same_photo_is_verified_at_distance_zero(tiny_verifier, orl):
    face = pixels_of(orl(1))
    result = services.verify_faces(face, face)
    assert result["verified"] is True
    assert result["distance"] < EMBEDDING_ATOL
    assert result["similarity"] == pytest.approx(1.0, abs=0.01)
    assert result["threshold"] == pytest.approx(0.015)
    assert result["threshold_rule"] == "eer"
    assert result["model_version"]["id"] == tiny_verifier.pk
    assert result["model_version"]["face_detector"] is None
    assert result["source_face"]["box"] == {"x1": 0.0, "y1": 0.0, "x2": 92.0, "y2": 112.0}
    assert result["source_face"]["whole_image"] is True
    # 92x112 is small: with no detector it is taken as a face crop, and the answer says so.
    assert any("used whole" in note for note in result["notes"])


def test_two_people_get_the_reference_distance(tiny_verifier, orl):
    a, b = pixels_of(orl(1)), pixels_of(orl(2))
    result = services.verify_faces(a, b)
    expected = reference_distance(tiny_verifier, a, b)
    assert result["distance"] == pytest.approx(expected, abs=EMBEDDING_ATOL)
    assert result["verified"] is (expected < 0.015) is False
    assert result["similarity"] == pytest.approx(
        distance_to_similarity(result["distance"], 0.015), abs=1e-5
    )


def test_a_given_threshold_overrides_the_calibrated_one(tiny_verifier, orl):
    a, b = pixels_of(orl(1)), pixels_of(orl(2))
    distance = reference_distance(tiny_verifier, a, b)
    loose = services.verify_faces(a, b, threshold=distance * 1.5)
    assert loose["verified"] is True and loose["threshold_rule"] == "given"
    assert loose["threshold"] == pytest.approx(distance * 1.5, abs=1e-6)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK"])
def test_every_colour_mode_gives_the_same_answer(tiny_verifier, orl, mode):
    grey = pixels_of(orl(3))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    data = encode(grey, fmt, mode, **({"quality": 100} if fmt == "JPEG" else {}))
    converted = services.read_image(data, f"x.{fmt.lower()}").pixels
    assert converted.shape == grey.shape and converted.dtype == np.uint8
    result = services.verify_faces(converted, grey)
    # CMYK JPEG is lossy (a quality-100 round trip moves the embedding about 1e-3).
    assert result["distance"] == pytest.approx(0.0, abs=EMBEDDING_ATOL)


def test_largest_face_is_compared_and_the_count_reported(tiny_verifier, tiny_face_detector):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    result = services.verify_faces(photo, photo)
    found = result["source_face"]["faces_found"]
    assert found >= 2, "the confident untrained detector finds several boxes"
    assert any(f"{found} faces found" in n for n in result["notes"])
    boxes = [m["box"] for m in result["matches"]]
    areas = np.array([(b["x2"] - b["x1"]) * (b["y2"] - b["y1"]) for b in boxes])
    assert len(areas) == found and areas[0] >= areas.max() - 1.0  # the largest is compared
    assert all(b["x2"] - b["x1"] >= 1 and b["y2"] - b["y1"] >= 1 for b in boxes)
    assert result["matches"][0]["distance"] < EMBEDDING_ATOL
    assert result["model_version"]["face_detector"]["id"] == tiny_face_detector.pk


def test_a_given_box_is_used_instead_of_detection(tiny_verifier, orl):
    face = pixels_of(orl(4))
    result = services.verify_faces(face, face, source_box=[10, 20, 60, 90])
    assert result["source_face"]["box"] == {"x1": 10.0, "y1": 20.0, "x2": 60.0, "y2": 90.0}
    assert result["source_face"]["whole_image"] is False
    assert result["distance"] > 0


def test_tiny_face_is_a_warning_not_an_error(tiny_verifier, orl):
    face = pixels_of(orl(5))
    result = services.verify_faces(face, face, source_box=[0, 0, 20, 20])
    assert any(w.startswith("source_image: tiny_face:") for w in result["warnings"])


def test_no_verifier_is_a_503(db, orl):
    with pytest.raises(FaceError) as caught:
        services.verify_faces(pixels_of(orl(1)), pixels_of(orl(1)))
    assert (caught.value.code, caught.value.status) == ("no_verifier", 503)


def test_large_photo_without_face_detector_is_a_clear_503(tiny_verifier):
    photo = np.zeros((600, 800, 3), dtype=np.uint8)
    with pytest.raises(FaceError) as caught:
        services.verify_faces(photo, photo)
    assert (caught.value.code, caught.value.status) == ("no_face_detector", 503)
    assert "detect_faces=false" in caught.value.message
    # The same photo declared a face crop is compared whole.
    assert services.verify_faces(photo, photo, detect_faces=False)["verified"] is True


def test_box_outside_the_image_is_a_400(tiny_verifier, orl):
    face = pixels_of(orl(1))
    with pytest.raises(FaceError) as caught:
        services.verify_faces(face, face, target_box=[500, 500, 600, 600])
    assert (caught.value.code, caught.value.status) == ("invalid_box", 400)
    assert "target_image" in caught.value.message
