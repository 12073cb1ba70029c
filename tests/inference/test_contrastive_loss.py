"""The contrastive loss, checked against numbers worked out by hand, and weight sharing."""

from __future__ import annotations

import pytest
import torch

from inference.siamese import (
    EmbeddingConfig,
    EmbeddingNet,
    SiameseNet,
    contrastive_loss,
    euclidean_distance,
)


def test_hand_computed_two_pairs() -> None:
    # m = 1. Same person at D = 0.3: (1 - 0)/2 * 0.3^2 = 0.045.
    # Different people at D = 0.4: 1/2 * max(0, 1 - 0.4)^2 = 0.5 * 0.36 = 0.18.
    # Mean over the two pairs: (0.045 + 0.18) / 2 = 0.1125.
    loss = contrastive_loss(torch.tensor([0.3, 0.4]), torch.tensor([0, 1]), margin=1.0)
    torch.testing.assert_close(loss, torch.tensor(0.1125))


def test_hand_computed_four_pairs_with_one_past_the_margin() -> None:
    # D = 0.3 same -> 0.045; D = 0.4 different -> 0.18; D = 1.5 different is past m = 1 -> 0;
    # D = 0 same -> 0. Mean: 0.225 / 4 = 0.05625.
    distance = torch.tensor([0.3, 0.4, 1.5, 0.0])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    torch.testing.assert_close(contrastive_loss(distance, y, margin=1.0), torch.tensor(0.05625))


def test_hand_computed_other_margin() -> None:
    # m = 2, different people at D = 0.5: 1/2 * (2 - 0.5)^2 = 1.125; same at D = 1: 0.5.
    loss = contrastive_loss(torch.tensor([0.5, 1.0]), torch.tensor([1, 0]), margin=2.0)
    torch.testing.assert_close(loss, torch.tensor((1.125 + 0.5) / 2))


def test_gradient_signs() -> None:
    # Gradient descent moves D against dL/dD: same pairs must be pulled together (dL/dD > 0),
    # different pairs inside the margin pushed apart (< 0), those past it left alone (0).
    distance = torch.tensor([0.3, 0.4, 1.5], requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0])
    contrastive_loss(distance, y, margin=1.0).backward()
    assert distance.grad is not None
    # By hand: d/dD of mean = (1/3) * [D, -(m - D), 0] = [0.1, -0.2, 0].
    torch.testing.assert_close(distance.grad, torch.tensor([0.1, -0.2, 0.0]))


def test_rejects_mismatched_shapes_and_bad_margin() -> None:
    with pytest.raises(ValueError):
        contrastive_loss(torch.zeros(3), torch.zeros(2), margin=1.0)
    with pytest.raises(ValueError):
        contrastive_loss(torch.zeros(3), torch.zeros(3), margin=0.0)


def test_distance_gradient_is_finite_at_zero() -> None:
    h1 = torch.ones(2, 4, requires_grad=True)
    h2 = torch.ones(2, 4)
    distance = euclidean_distance(h1, h2)
    assert torch.equal(distance, torch.zeros(2))
    contrastive_loss(distance, torch.zeros(2), margin=1.0).backward()
    assert h1.grad is not None and torch.isfinite(h1.grad).all()


def _tiny_net() -> SiameseNet:
    torch.manual_seed(0)
    config = EmbeddingConfig(input_size=16, widths=(4, 8), embedding_dim=8, dropout=0.0)
    return SiameseNet(EmbeddingNet(config))


def test_branches_are_one_module() -> None:
    net = _tiny_net()
    # The only parameters are the one embedding net's: there is no second copy to drift.
    assert [id(p) for p in net.parameters()] == [id(p) for p in net.embedding.parameters()]
    net.eval()
    a, b = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        h1, h2, _ = net(a, b)
        torch.testing.assert_close(h1, net.embedding(a))
        torch.testing.assert_close(h2, net.embedding(b))


def test_one_optimiser_step_moves_both_branches_alike() -> None:
    net = _tiny_net()
    a, b = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        before_1, before_2, _ = net(a, b)
    net.train()
    optimiser = torch.optim.SGD(net.parameters(), lr=0.5)
    _, _, distance = net(a, b)
    contrastive_loss(distance, torch.ones(4), margin=2.0).backward()
    optimiser.step()
    net.eval()
    with torch.no_grad():
        after_1, after_2, _ = net(a, b)
        swapped_1, swapped_2, _ = net(b, a)
    assert not torch.allclose(before_1, after_1)
    assert not torch.allclose(before_2, after_2)
    # After the step, the first branch embeds `b` exactly as the second branch does.
    torch.testing.assert_close(swapped_1, after_2)
    torch.testing.assert_close(swapped_2, after_1)
