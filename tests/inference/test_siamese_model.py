"""EmbeddingNet / SiameseNet: shapes, config, He init, and that a tiny net learns on ORL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from inference.faces import crop_face, to_tensor
from inference.runtime import CheckpointError, save_checkpoint
from inference.siamese import (
    EmbeddingConfig,
    EmbeddingEnsemble,
    EmbeddingNet,
    SiameseNet,
    contrastive_loss,
    euclidean_distance,
    load_verifier,
    save_verifier,
)
from tests.shared_data import orl_faces


def test_default_shapes_and_unit_embeddings() -> None:
    torch.manual_seed(0)
    net = SiameseNet().eval()
    x1, x2 = torch.randn(5, 1, 64, 64), torch.randn(5, 1, 64, 64)
    with torch.no_grad():
        h1, h2, distance = net(x1, x2)
    assert h1.shape == (5, 128) and h2.shape == (5, 128)
    assert distance.shape == (5,)
    torch.testing.assert_close(h1.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(distance, torch.linalg.vector_norm(h1 - h2, dim=1))


def test_unnormalised_embeddings_and_other_sizes() -> None:
    config = EmbeddingConfig(input_size=48, widths=(8, 16, 32), embedding_dim=20, normalize=False)
    net = EmbeddingNet(config).eval()
    with torch.no_grad():
        h = net(torch.randn(3, 1, 48, 48))
    assert h.shape == (3, 20)
    assert not torch.allclose(h.norm(dim=1), torch.ones(3))


def test_config_round_trips_through_json() -> None:
    config = EmbeddingConfig(widths=(8, 16), embedding_dim=32, dropout=0.1, normalize=False)
    data = json.loads(json.dumps(config.to_dict()))
    assert EmbeddingConfig.from_dict(data) == config
    assert EmbeddingConfig.from_dict({}) == EmbeddingConfig()
    with pytest.raises(ValueError):
        EmbeddingConfig.from_dict({"embeding_dim": 64})
    with pytest.raises(ValueError):
        EmbeddingConfig(dropout=1.0)


def test_he_initialisation_variance() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        weights = conv.weight.detach()
        if weights.numel() < 10_000:  # too few samples for a tight variance estimate
            continue
        # Notes: W ~ N(0, 2 / n[l-1]) for a layer feeding a ReLU.
        assert abs(weights.var().item() / (2.0 / fan_in) - 1.0) < 0.05
        assert abs(weights.mean().item()) < 0.05 * (2.0 / fan_in) ** 0.5
    assert sum(c.weight.numel() >= 10_000 for c in convs) >= 4
    head = net.head.weight.detach()
    assert abs(head.var().item() * head.shape[1] - 1.0) < 0.05
    assert torch.count_nonzero(net.head.bias) == 0


def test_identical_inputs_give_distance_zero_in_eval_mode() -> None:
    torch.manual_seed(1)
    net = SiameseNet().eval()
    x = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        _, _, distance = net(x, x.clone())
    assert torch.equal(distance, torch.zeros(4))


def test_euclidean_distance_matches_reference() -> None:
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        h1, h2 = torch.randn(7, 5, generator=generator), torch.randn(7, 5, generator=generator)
        reference = torch.tensor(
            [
                sum((a - b) ** 2 for a, b in zip(r1.tolist(), r2.tolist(), strict=True)) ** 0.5
                for r1, r2 in zip(h1, h2, strict=True)
            ]
        )
        torch.testing.assert_close(euclidean_distance(h1, h2), reference)


def _orl_batch(people: list[int], images: list[int], size: int) -> torch.Tensor:
    crops = []
    for person in people:
        for k in images:
            grey = cv2.imread(str(orl_faces() / f"s{person}" / f"{k}.pgm"), cv2.IMREAD_GRAYSCALE)
            crops.append(crop_face(grey, None, size=size))
    return to_tensor(crops)  # (len(people) * len(images), 1, size, size)


@pytest.fixture
def one_thread() -> Iterator[None]:
    # Tiny convs gain nothing from a second thread, and on a shared 2-core machine
    # two threads fighting other processes made this test several times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("one_thread")
def test_tiny_net_learns_to_separate_three_orl_people() -> None:
    torch.manual_seed(0)
    x = _orl_batch([1, 2, 3], [1, 2], size=32)  # (6, 1, 32, 32), two images per person
    labels = np.repeat([0, 1, 2], 2)
    i, j = np.triu_indices(6, k=1)  # all 15 pairs: 3 same-person, 12 different
    y = torch.tensor(labels[i] != labels[j], dtype=torch.float32)
    config = EmbeddingConfig(input_size=32, widths=(8, 16, 32), embedding_dim=16, dropout=0.0)
    net = SiameseNet(EmbeddingNet(config))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        _, _, distance = net(x[i], x[j])
        loss = contrastive_loss(distance, y, margin=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    net.eval()
    with torch.no_grad():
        _, _, distance = net(x[i], x[j])
        # Unseen photos (3 and 4) of the same people: nearest training photo's person.
        held_out = net.embedding(_orl_batch([1, 2, 3], [3, 4], size=32))
        train = net.embedding(x)
    assert distance[y == 0].max() < distance[y == 1].min()
    nearest = torch.cdist(held_out, train).argmin(dim=1).numpy()
    assert (labels[nearest] == labels).mean() >= 5 / 6


def test_verifier_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8)
    net = SiameseNet(EmbeddingNet(config))
    net.train()
    net(torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16))  # move BN running stats
    path = tmp_path / "verifier.safetensors"
    digest = save_verifier(path, net, {"threshold": 0.7})
    loaded, extra = load_verifier(path, "cpu", expected_sha256=digest)
    assert extra["threshold"] == 0.7
    assert loaded.config == config and not loaded.training
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval().embedding(x))


def test_load_verifier_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "detector.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, kind="detector", config={})
    with pytest.raises(CheckpointError):
        load_verifier(path, "cpu")
    wrong = tmp_path / "wrong.safetensors"
    save_checkpoint(wrong, {"w": torch.zeros(2)}, kind="verifier", config={}, extra={})
    with pytest.raises(CheckpointError):  # no preprocessing tag, no matching weights
        load_verifier(wrong, "cpu")


def test_flip_average_gives_a_face_and_its_mirror_one_embedding() -> None:
    torch.manual_seed(0)
    config = EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8, flip_average=True)
    net = EmbeddingNet(config).eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        h, h_mirror = net(x), net(x.flip(3))
        plain = EmbeddingNet(EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8))
        plain.load_state_dict(net.state_dict())
        plain.eval()
        # The mean of the two unit embeddings, brought back to unit length.
        expected = torch.nn.functional.normalize(plain(x) + plain(x.flip(3)), dim=1)
    assert h.shape == (3, 8)
    assert torch.allclose(h, h_mirror, atol=1e-6)
    assert torch.allclose(h, expected, atol=1e-6)
    # The net alone is not mirror-symmetric; only the averaging makes it so.
    assert not torch.allclose(plain(x), plain(x.flip(3)), atol=1e-3)
    net.train()
    assert net(x).shape == (3, 8)  # training: one pass per face, no mirror


def test_flatten_pooling_keeps_the_layout() -> None:
    config = EmbeddingConfig(input_size=16, widths=(4, 8, 6), embedding_dim=5, pooling="flatten")
    assert config.feature_size == 6 * 4 * 4
    net = EmbeddingNet(config).eval()
    assert net.head.in_features == 96
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match="divisible by 4"):
        EmbeddingConfig(input_size=18, widths=(4, 8, 6), pooling="flatten")
    with pytest.raises(ValueError, match="pooling"):
        EmbeddingConfig(pooling="max")


def test_ensemble_distance_is_the_mean_of_member_squared_distances(tmp_path: Path) -> None:
    torch.manual_seed(0)
    configs = [EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=d) for d in (6, 10)]
    members = [EmbeddingNet(c).eval() for c in configs]
    ensemble = EmbeddingEnsemble(members).eval()
    a, b = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        h_a, h_b = ensemble(a), ensemble(b)
        member_sq = [(m(a) - m(b)).pow(2).sum(dim=1) for m in members]
    assert ensemble.output_dim == 16 and ensemble.input_size == 16
    assert torch.allclose(h_a.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose((h_a - h_b).pow(2).sum(dim=1), sum(member_sq) / 2, atol=1e-6)

    path = tmp_path / "ensemble.safetensors"
    save_verifier(path, SiameseNet(ensemble), extra={"threshold": 0.5})
    loaded, extra = load_verifier(path, device="cpu")
    assert isinstance(loaded, EmbeddingEnsemble) and extra["threshold"] == 0.5
    with torch.no_grad():
        assert torch.equal(loaded(a), h_a)
    with pytest.raises(ValueError, match="one input size"):
        EmbeddingEnsemble([members[0], EmbeddingNet(EmbeddingConfig(input_size=32))])
