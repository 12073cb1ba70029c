"""Each optimiser, schedule and regulariser of the loop against the notes' formulas.

Two kinds of check: a few steps on ``J(w) = w^2 / 2`` (so ``g = w``) worked out by hand, and
slow references written line by line from the notes' equations, compared with
``torch.testing.assert_close`` over several seeds on a tiny least-squares problem.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from training.fit import FitConfig, fit, make_optimizer, minibatch_indices

Tensor = torch.Tensor


class Scalar(nn.Module):
    """One weight ``w``; the loss ``w^2 / 2`` has gradient ``w``."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value], dtype=torch.float64))


def _half_square(model: nn.Module, batch: object) -> dict[str, Tensor]:
    return {"loss": 0.5 * (model.w**2).sum()}  # type: ignore[operator]


def _steps(optimizer_name: str, n: int, **config: object) -> list[float]:
    model = Scalar()
    opt = make_optimizer(model.parameters(), FitConfig(optimizer=optimizer_name, **config))
    values = []
    for _ in range(n):
        opt.zero_grad()
        _half_square(model, None)["loss"].backward()
        opt.step()
        values.append(float(model.w.detach()))
    return values


# ----------------------------------------------------------------------------- by hand
def test_momentum_by_hand() -> None:
    # v = 0.9 v + 0.1 g; w -= v, from w = 1:
    # v1 = 0.1 -> w 0.9; v2 = 0.09 + 0.09 = 0.18 -> 0.72; v3 = 0.162 + 0.072 = 0.234 -> 0.486
    got = _steps("momentum", 3, learning_rate=0.1, momentum=0.9)
    assert got == pytest.approx([0.9, 0.72, 0.486], abs=1e-12)


def test_plain_gradient_descent_is_momentum_zero() -> None:
    assert _steps("momentum", 3, learning_rate=0.5, momentum=0.0) == pytest.approx(
        [0.5, 0.25, 0.125], abs=1e-12
    )


def test_rmsprop_by_hand() -> None:
    # E[g^2]_1 = 0.1 * 1 = 0.1, w = 1 - 0.1 / sqrt(0.1) = 1 - 0.316227766
    got = _steps("rmsprop", 1, learning_rate=0.1, rmsprop_gamma=0.9, eps=0.0)
    assert got == pytest.approx([1 - 0.1 / math.sqrt(0.1)], abs=1e-12)


def test_adam_by_hand() -> None:
    # Step 1: m = 0.1, v = 0.001, m_hat = v_hat = 1: w = 1 - 0.1 = 0.9.
    # Step 2 (g = 0.9): m = 0.18, v = 0.001809, m_hat = 0.18 / 0.19, v_hat = 0.001809 / 0.001999.
    m_hat, v_hat = 0.18 / 0.19, 0.001809 / 0.001999
    got = _steps("adam", 2, learning_rate=0.1, eps=0.0)
    assert got == pytest.approx([0.9, 0.9 - 0.1 * m_hat / math.sqrt(v_hat)], abs=1e-12)


# ----------------------------------------------------------------------------- references
def _problem(seed: int) -> tuple[nn.Linear, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    y = torch.randn(16, 1, generator=generator, dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=generator, dtype=torch.float64))
        model.bias.copy_(torch.randn(1, generator=generator, dtype=torch.float64))
    return model, x, y


def _gradients(params: list[Tensor], x: Tensor, y: Tensor, l2: float = 0.0) -> list[Tensor]:
    """Gradient of the mean squared error (+ l2 / 2 * ||W||^2 on the weight) at ``params``."""
    w, b = (p.detach().clone().requires_grad_(True) for p in params)
    loss = ((x @ w.T + b - y) ** 2).mean() + l2 / 2 * (w**2).sum()
    return list(torch.autograd.grad(loss, (w, b)))


Update = Callable[[list[Tensor], list[Tensor], dict[str, list[Tensor]], int], list[Tensor]]


def _reference(update: Update, model: nn.Linear, x: Tensor, y: Tensor, steps: int) -> list[Tensor]:
    params = [model.weight.detach().clone(), model.bias.detach().clone()]
    state: dict[str, list[Tensor]] = {}
    for t in range(1, steps + 1):
        params = update(params, _gradients(params, x, y), state, t)
    return params


def _ours(config: FitConfig, model: nn.Linear, x: Tensor, y: Tensor, steps: int) -> list[Tensor]:
    opt = make_optimizer(model.parameters(), config)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return [model.weight.detach(), model.bias.detach()]


def notes_momentum(alpha: float, beta: float) -> Update:
    """v_t = beta v_{t-1} + alpha grad; theta = theta - v_t."""

    def update(params, grads, state, t):
        v = state.setdefault("v", [torch.zeros_like(p) for p in params])
        for i, g in enumerate(grads):
            v[i] = beta * v[i] + alpha * g
        return [p - vi for p, vi in zip(params, v, strict=True)]

    return update


def notes_rmsprop(alpha: float, gamma: float, eps: float, eps_inside: bool) -> Update:
    """E[g^2]_t = gamma E[g^2]_{t-1} + (1 - gamma) g^2; theta -= alpha g / sqrt(E[g^2] + eps).

    ``eps_inside=False`` is PyTorch's placement, ``/ (sqrt(E[g^2]) + eps)``.
    """

    def update(params, grads, state, t):
        s = state.setdefault("s", [torch.zeros_like(p) for p in params])
        out = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s[i] = gamma * s[i] + (1 - gamma) * g**2
            denom = torch.sqrt(s[i] + eps) if eps_inside else torch.sqrt(s[i]) + eps
            out.append(p - alpha * g / denom)
        return out

    return update


def notes_adam(alpha: float, b1: float, b2: float, eps: float, eps_inside: bool) -> Update:
    """m, v moving averages, bias-corrected; theta -= alpha m_hat / sqrt(v_hat + eps)."""

    def update(params, grads, state, t):
        m = state.setdefault("m", [torch.zeros_like(p) for p in params])
        v = state.setdefault("v", [torch.zeros_like(p) for p in params])
        out = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            denom = torch.sqrt(v_hat + eps) if eps_inside else torch.sqrt(v_hat) + eps
            out.append(p - alpha * m_hat / denom)
        return out

    return update


@pytest.mark.parametrize("seed", range(3))
def test_momentum_matches_the_notes(seed: int) -> None:
    model, x, y = _problem(seed)
    want = _reference(notes_momentum(0.05, 0.9), model, x, y, 3)
    got = _ours(FitConfig(optimizer="momentum", learning_rate=0.05), model, x, y, 3)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_rmsprop_matches_the_notes_up_to_where_eps_goes(seed: int) -> None:
    # eps = 1e-3 makes the placement visible: PyTorch adds it outside the square root.
    model, x, y = _problem(seed)
    config = FitConfig(optimizer="rmsprop", learning_rate=0.01, eps=1e-3)
    outside = _reference(notes_rmsprop(0.01, 0.9, 1e-3, eps_inside=False), model, x, y, 3)
    inside = _reference(notes_rmsprop(0.01, 0.9, 1e-3, eps_inside=True), model, x, y, 3)
    got = _ours(config, model, x, y, 3)
    for a, b, c in zip(got, outside, inside, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(a, c, rtol=1e-9, atol=0)
    # At the default eps (1e-8) the notes' exact formula gives the same weights.
    model, x, y = _problem(seed)
    notes = _reference(notes_rmsprop(0.01, 0.9, 1e-8, eps_inside=True), model, x, y, 3)
    got = _ours(FitConfig(optimizer="rmsprop", learning_rate=0.01), model, x, y, 3)
    for a, b in zip(got, notes, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(3))
def test_adam_matches_the_notes_up_to_where_eps_goes(seed: int) -> None:
    model, x, y = _problem(seed)
    config = FitConfig(optimizer="adam", learning_rate=0.01, eps=1e-3)
    outside = _reference(notes_adam(0.01, 0.9, 0.999, 1e-3, eps_inside=False), model, x, y, 3)
    got = _ours(config, model, x, y, 3)
    for a, b in zip(got, outside, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    model, x, y = _problem(seed)
    notes = _reference(notes_adam(0.01, 0.9, 0.999, 1e-8, eps_inside=True), model, x, y, 3)
    got = _ours(FitConfig(optimizer="adam", learning_rate=0.01), model, x, y, 3)
    for a, b in zip(got, notes, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- L2 and clipping
def test_l2_weight_decay_by_hand_on_weights_only() -> None:
    model = nn.Linear(1, 1, bias=True).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    config = FitConfig(optimizer="momentum", momentum=0.0, learning_rate=0.5, weight_decay=0.1)
    opt = make_optimizer(model.parameters(), config)
    (0.0 * model(torch.ones(1, 1, dtype=torch.float64))).sum().backward()  # zero gradient
    opt.step()
    # d/dW of 0.1 / 2 * W^2 is 0.1 W: W = 1 - 0.5 * 0.1 = 0.95; the bias is not decayed.
    assert float(model.weight.detach()) == pytest.approx(0.95, abs=1e-12)
    assert float(model.bias.detach()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "momentum"])
def test_weight_decay_is_the_l2_term_of_the_cost(optimizer: str) -> None:
    """``weight_decay = lambda`` equals adding ``lambda / 2 * ||W||^2`` to the loss."""
    lam = 0.3
    model, x, y = _problem(0)
    penalised, _, _ = _problem(0)
    decayed = make_optimizer(
        model.parameters(), FitConfig(optimizer=optimizer, learning_rate=0.01, weight_decay=lam)
    )
    plain = make_optimizer(
        penalised.parameters(), FitConfig(optimizer=optimizer, learning_rate=0.01)
    )
    for _ in range(3):
        decayed.zero_grad()
        plain.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        (((penalised(x) - y) ** 2).mean() + lam / 2 * (penalised.weight**2).sum()).backward()
        decayed.step()
        plain.step()
    torch.testing.assert_close(model.weight, penalised.weight, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model.bias, penalised.bias, rtol=1e-10, atol=1e-12)


def _fit_scalar(config: FitConfig, loss: Callable[[nn.Module, object], dict[str, Tensor]]):
    model = Scalar()
    seen: list[float] = []

    def evaluate(m: nn.Module) -> dict[str, float]:
        seen.append(float(m.w.detach()))  # type: ignore[operator]
        return {"val": 0.0}

    result = fit(model, lambda epoch: [None], loss, evaluate, config)  # one step per epoch
    return seen, [r.lr for r in result.history]


def test_gradient_clipping_by_hand() -> None:
    def steep(model: nn.Module, batch: object) -> dict[str, Tensor]:
        return {"loss": 10.0 * model.w.sum()}  # type: ignore[operator]

    config = FitConfig(
        optimizer="momentum",
        momentum=0.0,
        learning_rate=0.1,
        grad_clip_norm=1.0,
        max_epochs=2,
        metric="val",
        patience=None,
    )
    seen, _ = _fit_scalar(config, steep)
    # g = 10 scaled to norm 1 (clip_grad_norm_ divides by norm + 1e-6, hence the tolerance)
    assert seen == pytest.approx([0.9, 0.8], abs=1e-7)
    unclipped, _ = _fit_scalar(dataclasses.replace(config, grad_clip_norm=None), steep)
    assert unclipped == pytest.approx([0.0, -1.0], abs=1e-12)


def test_gradient_clipping_scales_the_global_norm() -> None:
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    config = FitConfig(
        optimizer="momentum",
        momentum=0.0,
        learning_rate=1.0,
        grad_clip_norm=1.0,
        max_epochs=1,
        metric="val",
        patience=None,
    )
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)  # gradient (3, 4), norm 5
    fit(model, lambda e: [x], lambda m, b: {"loss": m(b).sum()}, lambda m: {"val": 0.0}, config)
    want = torch.tensor([[-0.6, -0.8]], dtype=torch.float64)
    torch.testing.assert_close(model.weight.detach(), want, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- decay in use
def test_inverse_time_decay_drives_the_updates() -> None:
    # alpha = 0.5 / (1 + epoch): 0.5, 0.25, 1/6; w *= (1 - alpha) -> 0.5, 0.375, 0.3125
    config = FitConfig(
        optimizer="momentum",
        momentum=0.0,
        learning_rate=0.5,
        lr_schedule="inverse_time",
        decay_rate=1.0,
        max_epochs=3,
        metric="val",
        patience=None,
    )
    seen, lrs = _fit_scalar(config, _half_square)
    assert lrs == pytest.approx([0.5, 0.25, 0.5 / 3], abs=1e-12)
    assert seen == pytest.approx([0.5, 0.375, 0.3125], abs=1e-12)


def test_step_decay_drives_the_updates() -> None:
    # alpha halves every 2 epochs: 0.4, 0.4, 0.2, 0.2, 0.1; w *= (1 - alpha)
    config = FitConfig(
        optimizer="momentum",
        momentum=0.0,
        learning_rate=0.4,
        lr_schedule="step",
        step_epochs=2,
        step_gamma=0.5,
        max_epochs=5,
        metric="val",
        patience=None,
    )
    seen, lrs = _fit_scalar(config, _half_square)
    assert lrs == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1], abs=1e-12)
    assert seen == pytest.approx([0.6, 0.36, 0.288, 0.2304, 0.20736], abs=1e-12)


def test_momentum_under_decay_follows_pytorchs_convention_not_the_notes() -> None:
    """The documented difference: PyTorch rescales the whole velocity by the current rate."""
    config = FitConfig(
        optimizer="momentum",
        momentum=0.9,
        learning_rate=0.1,
        lr_schedule="inverse_time",
        decay_rate=1.0,
        max_epochs=3,
        metric="val",
        patience=None,
    )
    seen, _ = _fit_scalar(config, _half_square)
    # PyTorch: b = 0.9 b + g; w -= alpha_t b with alpha = 0.1, 0.05, 0.1/3:
    # b1 = 1 -> 0.9; b2 = 1.8 -> 0.81; b3 = 2.43 -> 0.729
    assert seen == pytest.approx([0.9, 0.81, 0.729], abs=1e-12)
    # The notes' v = 0.9 v + alpha_t g would give 0.9, then v2 = 0.09 + 0.045 -> 0.765.
    assert seen[1] != pytest.approx(0.765)


# ----------------------------------------------------------------------------- mini-batches
def test_minibatches_cover_the_set_once_in_powers_of_two() -> None:
    batches = minibatch_indices(100, 32, epoch=3, seed=7)
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    assert sorted(torch.cat(batches).tolist()) == list(range(100))
    again = minibatch_indices(100, 32, epoch=3, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other = minibatch_indices(100, 32, epoch=4, seed=7)
    assert not torch.equal(torch.cat(batches), torch.cat(other))
    whole = minibatch_indices(100, 128, epoch=0)  # batch gradient descent
    assert len(whole) == 1 and len(whole[0]) == 100
    assert torch.equal(minibatch_indices(5, 2, 0, shuffle=False)[0], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="power of two"):
        minibatch_indices(100, 24, 0)
