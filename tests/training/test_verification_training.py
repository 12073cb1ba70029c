"""The Siamese verifier's training pipeline: augmentation, training, cross-validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from inference.faces import crop_face, to_gray, to_tensor
from inference.pairs import all_eval_pairs
from inference.preprocess import load_rgb
from inference.siamese import EmbeddingConfig, EmbeddingEnsemble, EmbeddingNet, SiameseNet
from inference.verification_metrics import calibrate
from tests.shared_data import orl_faces
from training.crossval import cross_validate
from training.fit import FitConfig
from training.formats.folders import FaceSample, load_identity_folder
from training.verification import (
    DEFAULT_VERIFIER_EMBEDDING_CONFIG,
    DEFAULT_VERIFIER_FIT_CONFIG,
    FaceAugmentConfig,
    VerifierTrainConfig,
    augment_face,
    evaluate_verifier,
    in_batch_pairs,
    pairwise_distances,
    train_verifier,
)

# Small enough for a few seconds per epoch on one thread, big enough to learn ORL faces.
TINY = EmbeddingConfig(input_size=32, widths=(8, 16, 32), embedding_dim=32)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Other jobs share the machine; one thread also makes timings comparable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def orl() -> list[FaceSample]:
    """All 400 ORL faces (40 people x 10)."""
    return load_identity_folder(orl_faces())


def _people(samples: list[FaceSample], names: list[str]) -> list[FaceSample]:
    return [s for s in samples if s.identity in names]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augment_face_keeps_shape_and_dtype_and_repeats_per_seed(seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, size=(112, 92, 3), dtype=np.uint8)
    region = (10.0, 12.0, 80.0, 100.0)

    out, window = augment_face(image, region, np.random.default_rng(seed))
    again, window_again = augment_face(image, region, np.random.default_rng(seed))
    other, _ = augment_face(image, region, np.random.default_rng(seed + 100))

    assert out.shape == (112, 92) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, again)
    assert window == window_again
    assert not np.array_equal(out, other)
    assert 0 <= window[0] < window[2] <= 92 and 0 <= window[1] < window[3] <= 112
    crop = crop_face(out, window, margin=0.0, size=32)
    assert crop.shape == (32, 32) and crop.dtype == np.uint8


def test_augment_face_mirror_is_horizontal_and_moves_the_window() -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(40, 30), dtype=np.uint8)
    only_flip = FaceAugmentConfig(
        flip_p=1.0, max_shift=0.0, scale_range=(1.0, 1.0), brightness=0, contrast=0, gamma=0
    )

    out, window = augment_face(image, (2.0, 5.0, 12.0, 35.0), np.random.default_rng(0), only_flip)

    np.testing.assert_array_equal(out, image[:, ::-1])
    assert window == pytest.approx((18.0, 5.0, 28.0, 35.0))


def test_augment_face_whole_image_default_window() -> None:
    image = np.full((50, 40), 128, dtype=np.uint8)
    out, window = augment_face(image, None, np.random.default_rng(3))
    assert out.shape == (50, 40)
    assert 0 <= window[0] < window[2] <= 40 and 0 <= window[1] < window[3] <= 50


def test_evaluate_verifier_matches_calibrate_on_own_distances(orl: list[FaceSample]) -> None:
    samples = _people(orl, ["s3", "s7", "s12", "s25"])
    torch.manual_seed(0)
    net = EmbeddingNet(TINY).eval()

    result = evaluate_verifier(net, samples, rng_seed=5)

    # Slow reference: crop each face the way serving does, embed, measure pair by pair.
    crops = [crop_face(to_gray(load_rgb(s.image_path)), None, margin=0.2, size=32) for s in samples]
    with torch.no_grad():
        h = net(to_tensor(crops)).numpy()
    people = sorted({s.identity for s in samples})
    labels = np.array([people.index(s.identity) for s in samples])
    idx1, idx2, y = all_eval_pairs(labels, np.random.default_rng(5))
    distances = [float(np.linalg.norm(h[i] - h[j])) for i, j in zip(idx1, idx2, strict=True)]
    expected = calibrate(np.array(distances), y == 0)

    assert result.n_same == 4 * 45 and result.n_different == 4 * 45
    for name in ("eer", "eer_threshold", "auc", "tar_at_far_1pct", "tar_at_far_01pct"):
        assert getattr(result, name) == pytest.approx(getattr(expected, name), abs=1e-5), name


def test_train_verifier_lowers_validation_eer(orl: list[FaceSample]) -> None:
    # Six people teach little that carries over to new faces, and an untrained conv net on
    # standardised crops already scores 24-36% EER here (raw pixels are a strong baseline on
    # ORL), so the bound is modest: measured 19.3% against 24.1% untrained with seed 0
    # (seeds 1 and 2: 24.8% vs 28.1%, 23.7% vs 35.6%).
    train = _people(orl, ["s1", "s2", "s3", "s4", "s5", "s6"])
    val = _people(orl, ["s31", "s32", "s33", "s34", "s35", "s36"])
    # The independent-pairs sampler with the config it was measured with (before the
    # in-batch sampler became the default).
    config = EmbeddingConfig(input_size=32, widths=(8, 16, 32, 64), embedding_dim=32, dropout=0.0)
    torch.manual_seed(0)  # the same initial weights train_verifier(seed=0) starts from
    untrained = evaluate_verifier(SiameseNet(EmbeddingNet(config)).eval(), val, rng_seed=0)
    fit_config = dataclasses.replace(
        DEFAULT_VERIFIER_FIT_CONFIG, batch_size=32, max_epochs=8, patience=None, max_minutes=1.0
    )

    result = train_verifier(
        train,
        val,
        VerifierTrainConfig(
            embedding_config=config,
            fit_config=fit_config,
            sampler="pairs",
            members=1,
            pairs_per_epoch=256,
            hard_negatives=False,
            margin=1.0,
        ),
        seed=0,
    )

    assert len(result.history) >= 4
    assert result.calibration.eer == pytest.approx(min(h.metrics["eer"] for h in result.history))
    assert result.calibration.eer < 0.22
    assert result.calibration.eer < untrained.eer - 0.03
    assert not result.model.training


def test_train_verifier_refuses_people_in_both_sets(orl: list[FaceSample]) -> None:
    with pytest.raises(ValueError, match="share people"):
        train_verifier(_people(orl, ["s1", "s2"]), _people(orl, ["s2", "s3"]))


def test_cross_validate_keeps_people_apart(orl: list[FaceSample]) -> None:
    names = [f"s{i}" for i in range(1, 11)]
    samples = _people(orl, names)
    fit_config = FitConfig(batch_size=16, max_epochs=1, metric="eer", mode="min")

    config = VerifierTrainConfig(
        embedding_config=TINY,
        fit_config=fit_config,
        batches_per_epoch=2,
        hard_negatives=True,
        members=1,
    )

    cv = cross_validate(samples, k=5, config=config, seed=1)

    assert len(cv.folds) == 5
    tested: list[str] = []
    for fold in cv.folds:
        train, val, test = set(fold.train_people), set(fold.val_people), set(fold.test_people)
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(names)
        assert len(val) >= 2 and len(test) == 2
        tested += fold.test_people
    assert sorted(tested) == sorted(names)
    eers = [f.test.eer for f in cv.folds]
    assert cv.mean["eer"] == pytest.approx(np.mean(eers))
    assert cv.std["eer"] == pytest.approx(np.std(eers))


def test_in_batch_pairs_takes_every_positive_and_as_many_negatives() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2])  # positives: 3 (person 0) + 1 (person 1) = 4
    h = torch.randn(6, 4)
    distances = pairwise_distances(h)

    i, j, y = in_batch_pairs(labels, distances, hard_negatives=False)

    assert (i < j).all()
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(pairs) == len(i)  # no pair twice
    triples = zip(i.tolist(), j.tolist(), y.tolist(), strict=True)
    assert {(a, b) for a, b, t in triples if t == 0} == {(0, 1), (0, 2), (1, 2), (3, 4)}
    assert int((y == 1).sum()) == 4
    assert all((labels[a] != labels[b]).item() for a, b in zip(i[y == 1], j[y == 1], strict=True))


def test_in_batch_hard_negatives_are_the_closest_different_pairs() -> None:
    labels = torch.tensor([0, 0, 1, 1])  # 2 positives, 4 negatives
    # Points on a line: 0 at 0.0, 1 at 3.0, 2 at 1.0, 3 at 10.0.
    h = torch.tensor([[0.0], [3.0], [1.0], [10.0]])
    distances = pairwise_distances(h)

    i, j, y = in_batch_pairs(labels, distances, hard_negatives=True)

    negatives = {(a, b) for a, b, t in zip(i.tolist(), j.tolist(), y.tolist(), strict=True) if t}
    # Negative distances: (0,2) 1, (1,2) 2, (0,3) 10, (1,3) 7 -> the two closest.
    assert negatives == {(0, 2), (1, 2)}


def test_pairwise_distances_match_cdist_with_an_exact_zero_diagonal() -> None:
    h = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    d = pairwise_distances(h)
    assert torch.allclose(d, torch.cdist(h, h), atol=1e-10)
    assert (d.diagonal() == 0).all()
    d.sum().backward()  # coinciding rows (the diagonal) must not give a NaN gradient
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_train_verifier_with_in_batch_pairs_beats_the_untrained_net(
    orl: list[FaceSample],
) -> None:
    # The default sampler: P people x K faces per batch, every pair in the batch. Measured
    # with seed 0: val EER 11.1% after 8 short epochs against 24.1% untrained.
    train = _people(orl, [f"s{i}" for i in range(1, 13)])
    val = _people(orl, ["s31", "s32", "s33", "s34", "s35", "s36"])
    config = DEFAULT_VERIFIER_EMBEDDING_CONFIG
    torch.manual_seed(0)
    untrained = evaluate_verifier(SiameseNet(EmbeddingNet(config)).eval(), val, rng_seed=0)
    fit_config = dataclasses.replace(
        DEFAULT_VERIFIER_FIT_CONFIG, max_epochs=8, patience=None, max_minutes=1.0
    )

    result = train_verifier(
        train,
        val,
        VerifierTrainConfig(
            fit_config=fit_config, batches_per_epoch=6, hard_negatives=True, members=1
        ),
        seed=0,
    )

    assert len(result.history) == 8
    assert result.calibration.eer < untrained.eer - 0.05
    assert result.calibration.eer < 0.2


def test_an_ensemble_trains_each_member_and_is_calibrated_as_one(orl: list[FaceSample]) -> None:
    train = _people(orl, [f"s{i}" for i in range(1, 7)])
    val = _people(orl, ["s31", "s32", "s33"])
    fit_config = dataclasses.replace(
        DEFAULT_VERIFIER_FIT_CONFIG, max_epochs=2, patience=None, max_minutes=None
    )

    config = VerifierTrainConfig(
        members=2, fit_config=fit_config, embedding_config=TINY, batches_per_epoch=2
    )
    result = train_verifier(train, val, config)

    net = result.model.embedding
    assert isinstance(net, EmbeddingEnsemble) and len(net.nets) == 2
    assert result.members == 2 and len(result.history) == 4
    assert net.output_dim == 2 * TINY.embedding_dim
    # Different seeds: the members' weights differ.
    assert not torch.equal(net.nets[0].head.weight, net.nets[1].head.weight)
    again = evaluate_verifier(result.model, val, rng_seed=0)
    assert result.calibration.eer == pytest.approx(again.eer)
    with pytest.raises(ValueError, match="members"):
        VerifierTrainConfig(members=0)
    with pytest.raises(ValueError, match="sampler"):
        VerifierTrainConfig(sampler="triplets")


def test_augment_face_rotation_turns_the_face_about_its_window() -> None:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[8:56, 30:34] = 255  # a vertical bar through the centre
    still = FaceAugmentConfig(
        flip_p=0.0, max_shift=0.0, scale_range=(1.0, 1.0), brightness=0.0, contrast=0.0, gamma=0.0
    )
    turned = dataclasses.replace(still, max_rotation=30.0)

    plain, _ = augment_face(image, None, np.random.default_rng(0), still)
    rotated, window = augment_face(image, None, np.random.default_rng(0), turned)

    assert np.array_equal(plain, image)
    assert rotated.shape == image.shape and window == (0.0, 0.0, 64.0, 64.0)
    rows = np.flatnonzero(rotated[:, :].max(axis=1) > 128)
    top_cols = np.flatnonzero(rotated[rows[0] + 2] > 128)
    bottom_cols = np.flatnonzero(rotated[rows[-1] - 2] > 128)
    # The bar now leans: its top and bottom ends sit in different columns, centre kept.
    assert abs(top_cols.mean() - bottom_cols.mean()) > 8
    assert abs(rotated[32].argmax() - 31.5) < 3
    with pytest.raises(ValueError, match="max_rotation"):
        FaceAugmentConfig(max_rotation=90.0)
