"""The training loop: convergence, stopping rules, schedules, progress and cancellation."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from training.fit import (
    FitCancelled,
    FitConfig,
    NonFiniteLossError,
    Progress,
    fit,
    make_optimizer,
    make_scheduler,
    training_state,
)

Batch = tuple[torch.Tensor, torch.Tensor]


def _regression_data(n: int = 256, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    y = (
        x @ torch.tensor([[2.0], [-1.0], [0.5]])
        + 1.0
        + 0.01 * torch.randn(n, 1, generator=generator)
    )
    return x, y


def _batches(data: Batch, batch_size: int = 32) -> Callable[[int], list[Batch]]:
    x, y = data

    def per_epoch(epoch: int) -> list[Batch]:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        return [(x[i], y[i]) for i in order.split(batch_size)]

    return per_epoch


def _mse_step(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    x, y = batch
    loss = nn.functional.mse_loss(model(x), y)
    return {"loss": loss, "mse": loss.detach()}


def _val_loss(data: Batch) -> Callable[[nn.Module], dict[str, float]]:
    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"val_loss": float(nn.functional.mse_loss(model(data[0]), data[1]))}

    return evaluate


def _scripted(values: list[float], snapshots: list[dict[str, torch.Tensor]] | None = None):
    """An evaluate() returning ``values`` in turn, optionally recording the weights seen."""
    it: Iterator[float] = iter(values)

    def evaluate(model: nn.Module) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        if snapshots is not None:
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"map50": next(it)}

    return evaluate


def test_loss_decreases_on_a_tiny_regression() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    data = _regression_data()
    config = FitConfig(learning_rate=0.01, max_epochs=15, metric="val_loss", mode="min")
    result = fit(model, _batches(data), _mse_step, _val_loss(_regression_data(64, 1)), config)
    losses = [record.train_loss for record in result.history]
    assert result.stopped_reason == "max_epochs" and len(losses) == 15
    assert losses[-1] < losses[0] / 10
    assert result.best_metric is not None and result.best_metric < 0.05
    assert set(result.history[0].train_losses) == {"loss", "mse"}
    assert model.training


def test_early_stopping_after_patience_epochs_keeps_the_best_state() -> None:
    model = nn.Linear(3, 1)
    snapshots: list[dict[str, torch.Tensor]] = []
    metrics = [0.1, 0.3, 0.5, 0.4, 0.45, 0.9, 0.9]
    config = FitConfig(max_epochs=7, patience=2, learning_rate=0.05)
    evaluate = _scripted(metrics, snapshots)
    result = fit(model, _batches(_regression_data(64)), _mse_step, evaluate, config)
    assert result.stopped_reason == "early_stopping"
    assert len(result.history) == 5  # epochs 3 and 4 brought no improvement
    assert result.best_epoch == 2 and result.best_metric == 0.5
    assert result.best_state is not None
    for name, tensor in result.best_state.items():
        torch.testing.assert_close(tensor, snapshots[2][name])
    assert not torch.equal(result.best_state["weight"], model.weight.detach())


def test_min_mode_and_min_delta() -> None:
    config = FitConfig(max_epochs=10, patience=3, metric="map50", mode="min", min_delta=0.05)
    metrics = [1.0, 0.9, 0.88, 0.87, 0.86, 0.5]  # 0.88..0.86 are within min_delta of 0.9
    result = fit(
        nn.Linear(3, 1), _batches(_regression_data(32)), _mse_step, _scripted(metrics), config
    )
    assert result.stopped_reason == "early_stopping"
    assert result.best_epoch == 1 and len(result.history) == 5


def test_time_budget_stops_training() -> None:
    def slow_step(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        time.sleep(0.01)
        return _mse_step(model, batch)

    config = FitConfig(max_epochs=10_000, max_minutes=0.3 / 60, metric="val_loss", mode="min")
    data = _regression_data(64)
    started = time.monotonic()
    result = fit(nn.Linear(3, 1), _batches(data, 8), slow_step, _val_loss(data), config)
    assert result.stopped_reason == "time_budget"
    assert 0.3 <= result.elapsed_seconds < 3.0 and time.monotonic() - started < 3.0
    assert result.best_state is not None and len(result.history) >= 1


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("inverse_time", lambda e: 0.1 / (1 + 0.5 * e)),
        ("exponential", lambda e: 0.1 * 0.95**e),
        ("step", lambda e: 0.1 * 0.9 ** (e // 5)),
        ("none", lambda e: 0.1),
    ],
)
def test_learning_rate_schedules(schedule: str, expected: Callable[[int], float]) -> None:
    config = FitConfig(
        learning_rate=0.1,
        lr_schedule=schedule,
        decay_rate=0.5,
        max_epochs=12,
        patience=None,
    )
    result = fit(
        nn.Linear(3, 1), _batches(_regression_data(32)), _mse_step, _scripted([0.0] * 12), config
    )
    assert [r.lr for r in result.history] == pytest.approx([expected(e) for e in range(12)])


def test_inverse_time_decay_is_exactly_the_notes_formula() -> None:
    config = FitConfig(learning_rate=0.02, lr_schedule="inverse_time", decay_rate=0.3)
    optimizer = make_optimizer(nn.Linear(2, 2).parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    for epoch in range(20):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02 / (1 + 0.3 * epoch), rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_cosine_reaches_min_lr_at_max_epochs() -> None:
    config = FitConfig(learning_rate=0.1, lr_schedule="cosine", min_lr=0.001, max_epochs=10)
    optimizer = make_optimizer(nn.Linear(2, 2).parameters(), config)
    scheduler = make_scheduler(optimizer, config)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_optimizer_defaults_follow_the_notes() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    adam = make_optimizer(model.parameters(), FitConfig(weight_decay=1e-4))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.defaults["betas"] == (0.9, 0.999) and adam.defaults["eps"] == 1e-8
    decayed, plain = adam.param_groups
    assert decayed["weight_decay"] == 1e-4 and len(decayed["params"]) == 1  # Linear weight
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3  # biases, BN scale/shift
    sgd = make_optimizer(model.parameters(), FitConfig(optimizer="momentum"))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    rms = make_optimizer(model.parameters(), FitConfig(optimizer="rmsprop"))
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.9


@pytest.mark.parametrize("bad", [24, 0, -8, 3])
def test_batch_size_must_be_a_power_of_two(bad: int) -> None:
    with pytest.raises(ValueError, match=f"batch_size must be a power of two.*got {bad}"):
        FitConfig(batch_size=bad)
    assert FitConfig(batch_size=64).batch_size == 64


def test_progress_fraction_goes_monotonically_from_zero_to_one() -> None:
    reports: list[Progress] = []
    config = FitConfig(max_epochs=4, patience=None, metric="val_loss", mode="min")
    data = _regression_data(64)
    fit(nn.Linear(3, 1), _batches(data, 16), _mse_step, _val_loss(data), config, reports.append)
    fractions = [p.fraction for p in reports]
    assert fractions == sorted(fractions)
    assert fractions[0] == pytest.approx(1 / 16)  # one step of 4 epochs x 4 steps
    assert fractions[-1] == 1.0 and reports[-1].phase == "done"
    assert all(p.eta_seconds is not None and p.eta_seconds >= 0 for p in reports)
    assert reports[-1].eta_seconds == 0.0
    train = [p for p in reports if p.phase == "train"]
    assert len(train) == 16 and train[0].steps_in_epoch == 4 and "loss" in train[0].losses
    evals = [p for p in reports if p.phase == "eval"]
    assert len(evals) == 4 and "val_loss" in evals[0].metrics


def test_progress_fraction_follows_the_time_budget_when_it_binds() -> None:
    reports: list[Progress] = []

    def slow_step(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        time.sleep(0.01)
        return _mse_step(model, batch)

    config = FitConfig(max_epochs=1000, max_minutes=0.3 / 60, metric="val_loss", mode="min")
    data = _regression_data(32)
    fit(nn.Linear(3, 1), _batches(data, 8), slow_step, _val_loss(data), config, reports.append)
    fractions = [p.fraction for p in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert max(p.fraction for p in reports if p.phase != "done") > 0.5  # by time, not epochs


def test_cancellation_returns_the_best_so_far_and_leaves_train_mode() -> None:
    def cancel_in_epoch_two(progress: Progress) -> None:
        if progress.epoch == 2 and progress.phase == "train":
            raise FitCancelled

    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1))
    config = FitConfig(max_epochs=10, patience=None)
    evaluate = _scripted([0.2, 0.1, 0.3, 0.4])
    result = fit(
        model, _batches(_regression_data(64)), _mse_step, evaluate, config, cancel_in_epoch_two
    )
    assert result.stopped_reason == "cancelled"
    assert len(result.history) == 2 and result.best_epoch == 0 and result.best_metric == 0.2
    assert result.best_state is not None and model.training


def test_cancellation_before_any_evaluation_has_no_best_state() -> None:
    def cancel(progress: Progress) -> None:
        raise FitCancelled

    result = fit(
        nn.Linear(3, 1),
        _batches(_regression_data(32)),
        _mse_step,
        _scripted([1.0]),
        FitConfig(),
        cancel,
    )
    assert result.stopped_reason == "cancelled"
    assert result.best_state is None and result.best_epoch == -1 and result.history == []


def test_diverging_loss_raises_a_clear_error() -> None:
    def nan_step(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": model(batch[0]).sum() * float("nan")}

    with pytest.raises(NonFiniteLossError, match="lower learning_rate"):
        fit(
            nn.Linear(3, 1), _batches(_regression_data(32)), nan_step, _scripted([1.0]), FitConfig()
        )


def test_missing_metric_or_loss_is_a_clear_error() -> None:
    data = _regression_data(32)
    with pytest.raises(KeyError, match=r"FitConfig\.metric is 'map50'"):
        fit(nn.Linear(3, 1), _batches(data), _mse_step, _val_loss(data), FitConfig())
    with pytest.raises(KeyError, match="must return a 'loss'"):
        fit(
            nn.Linear(3, 1),
            _batches(data),
            lambda m, b: {"mse": m(b[0]).sum()},
            _val_loss(data),
            FitConfig(metric="val_loss"),
        )


def test_training_state_loads_with_weights_only() -> None:
    model = nn.Linear(3, 1)
    config = FitConfig(lr_schedule="step")
    optimizer = make_optimizer(model.parameters(), config)
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    state = training_state(model, optimizer, config, 4, 0.7, make_scheduler(optimizer, config))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["epoch"] == 4 and loaded["best_metric"] == 0.7 and loaded["format_version"] == 2
    assert FitConfig(**loaded["config"]) == config
    resumed = nn.Linear(3, 1)
    resumed.load_state_dict(loaded["model"])
    torch.testing.assert_close(resumed.weight, model.weight)
    make_optimizer(resumed.parameters(), config).load_state_dict(loaded["optimizer"])


def test_epoch_printer_writes_one_line_per_evaluated_epoch() -> None:
    from training.fit import Progress, epoch_printer, format_seconds

    lines: list[str] = []
    report = epoch_printer(lines.append)

    def progress(epoch: int, phase: str, metrics: dict[str, float]) -> Progress:
        return Progress(epoch, 10, 4, 4, 0.25, 125.0, 40.0, 3e-3, {"loss": 0.12345}, metrics, phase)

    report(progress(2, "train", {}))  # a step: nothing
    report(progress(2, "eval", {"eer": 0.0812}))
    report(progress(2, "eval", {"eer": 0.0812}))  # the same epoch again: nothing
    report(progress(3, "eval", {"eer": 0.07}))

    assert lines == [
        "epoch 3/10  25% ETA 2m05s lr 3.00e-03 loss 0.1235 eer 0.081",
        "epoch 4/10  25% ETA 2m05s lr 3.00e-03 loss 0.1235 eer 0.070",
    ]
    assert format_seconds(3599.9) == "59m59s"
