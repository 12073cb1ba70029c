"""FacePipeline with the shipped models: two-view detection, crop rules, decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.face_pipeline import (
    FacePipeline,
    NoFaceFound,
    detect_faces,
    largest_face,
)
from inference.predict import Predictor
from inference.preprocess import load_rgb
from inference.siamese import EmbeddingConfig, EmbeddingNet
from tests.shared_data import orl_faces, shared_path
from training.formats.voc import read_voc

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "demo" / "models"


@pytest.fixture(scope="module")
def detector() -> Predictor:
    return Predictor.from_checkpoint(MODELS / "face-detector.safetensors", device="cpu")


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline.from_checkpoints(
        MODELS / "verifier-orl.safetensors",
        detector_path=MODELS / "face-detector.safetensors",
        device="cpu",
    )


def _iou(a: tuple[float, ...], b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_faces_in_a_street_photo_match_the_labelled_boxes(detector: Predictor) -> None:
    record = next(
        r for r in read_voc(shared_path("face_mask")).records if r.stem == "maksssksksss0"
    )
    found = detect_faces(detector, load_rgb(record.image_path))
    assert found, "no face found in a labelled street photo"
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.2
    # Every box kept at the serving score overlaps a labelled face.
    for box, _ in found:
        assert max(_iou(box, gt) for gt in record.boxes) > 0.3


def test_a_close_up_portrait_is_found(detector: Predictor) -> None:
    image = load_rgb(orl_faces() / "s2" / "1.pgm")  # 92 x 112, face fills it
    # The shipped detector learned frame-filling faces (zoomed crowd faces and ORL's
    # train-split portraits; s2 is a test-split person): it finds this one as it is, and the
    # zoomed-out view stays a second chance for faces larger still.
    plain = detector.predict([image], score_threshold=0.2)[0]
    assert len(plain) == 1
    box = largest_face(detector, image)
    assert box is not None
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= 92 and 0 <= y1 < y2 <= 112
    assert x2 - x1 > 0.4 * 92 and y2 - y1 > 0.3 * 112
    assert x1 < 46 < x2 and y1 < 56 < y2  # it covers the middle of the portrait


def test_crop_rules_without_a_detector() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8))
    pipe = FacePipeline(net, threshold=0.5, detector=None)
    small = np.full((112, 92), 128, dtype=np.uint8)

    search = pipe.find_faces(small)
    assert search.note is not None and "used whole" in search.note
    (face,) = search.faces
    assert face.whole_image and face.box == (0.0, 0.0, 92.0, 112.0) and face.crop.shape == (16, 16)
    with pytest.raises(NoFaceFound, match="no face detector is loaded"):
        pipe.find_faces(np.zeros((400, 600, 3), dtype=np.uint8))
    assert pipe.find_faces(np.zeros((400, 600, 3), dtype=np.uint8), detect_faces=False).faces

    given = pipe.find_faces(small, box=(-10, 20, 50, 500))
    assert given.faces[0].box == (0.0, 20.0, 50.0, 112.0)  # clipped to the image
    with pytest.raises(ValueError, match="outside"):
        pipe.find_faces(small, box=(200, 200, 300, 300))
    with pytest.raises(ValueError, match="x2 > x1"):
        pipe.find_faces(small, box=(50, 20, 10, 60))
    assert pipe.embed([]).shape == (0, 8)


def test_shipped_models_tell_test_split_people_apart(pipeline: FacePipeline) -> None:
    # s2, s3, s7, s23 are test-split people: the shipped verifier never trained on them.
    people = ["s2", "s3", "s7", "s23"]
    faces = orl_faces()
    crops, labels = [], []
    for i, person in enumerate(people):
        for shot in (1, 5, 9):
            search = pipeline.find_faces(load_rgb(faces / person / f"{shot}.pgm"))
            crops.append(search.faces[0].crop)
            labels.append(i)
    emb = pipeline.embed(crops)
    correct = total = 0
    for a in range(len(crops)):
        for b in range(a + 1, len(crops)):
            decision = pipeline.compare(emb[a], emb[b])
            assert decision.threshold == pytest.approx(pipeline.threshold)
            # The one similarity scale: 0.85 at the threshold, 1 / (1 + c (d / t)^4).
            c = 0.15 / 0.85
            assert decision.similarity == pytest.approx(
                1 / (1 + c * (decision.distance / decision.threshold) ** 4)
            )
            correct += decision.verified == (labels[a] == labels[b])
            total += 1
    # Measured 60 of 66 (91%) with the shipped models; a broken crop or model lands near
    # half (two thirds of the pairs are different people, so "never" scores 0.82).
    assert correct / total >= 0.88
    same = pipeline.compare(emb[0], emb[0])
    assert same.verified and same.distance == 0.0 and same.similarity == 1.0


def test_a_part_of_a_face_inside_the_face_is_not_a_second_face(detector: Predictor) -> None:
    # On this portrait the detector also boxes a part of the face (score 0.46
    # inside the whole-face box at 0.73); NMS keeps both, the nesting rule only one.
    image = load_rgb(orl_faces() / "s34" / "7.pgm")
    found = detect_faces(detector, image)
    assert len(found) == 1
    x1, y1, x2, y2 = found[0][0]
    assert (x2 - x1) * (y2 - y1) > 0.5 * 92 * 112


def test_faces_are_found_in_portraits_of_people_it_never_saw_in_any_light(
    detector: Predictor,
) -> None:
    """The 12 ORL people of the val and test splits (120 photos), as they are and lit from
    one side: measured 119 of 120 and 120 of 120 with the shipped detector (83.5% and 59.0%
    of all 400 with the one before). The bar leaves two photos of room for scores that sit
    at the serving bar and move a little on another CPU."""
    from training.augment import shade
    from training.splits import deterministic_split

    people = sorted(p.name for p in orl_faces().iterdir() if p.is_dir())
    splits = deterministic_split(people)
    held_out = splits["val"] + splits["test"]
    photos = [
        load_rgb(p) for person in held_out for p in sorted((orl_faces() / person).glob("*.pgm"))
    ]
    assert len(photos) == 120
    sides = ("left", "right", "top", "bottom")
    plain = sum(bool(detect_faces(detector, photo)) for photo in photos)
    lit = sum(
        bool(detect_faces(detector, shade(photo, sides[i % 4], 0.2)))
        for i, photo in enumerate(photos)
    )
    assert plain >= 118 and lit >= 118, (plain, lit)
