"""Random search on a log scale, coarse then fine; selection with satisficing limits."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from training import search, selection
from training.search import Range


def test_log_scale_sampling_is_uniform_in_the_exponent():
    space = [Range("learning_rate", "log", 1e-4, 1e-1)]
    values = [s["learning_rate"] for s in search.sample(space, 4000, seed=1)]
    exponents = np.log10(values)
    assert exponents.min() >= -4 and exponents.max() <= -1
    # Uniform in [-4, -1]: each decade holds about a third, quartiles at -3.25, -2.5, -1.75.
    np.testing.assert_allclose(
        np.quantile(exponents, [0.25, 0.5, 0.75]), [-3.25, -2.5, -1.75], atol=0.08
    )
    assert abs(np.mean(np.array(values) < 1e-3) - 1 / 3) < 0.03  # a linear draw would give 0.9%


def test_sampling_repeats_by_seed_and_is_random_not_a_grid():
    a = search.sample(search.DETECTOR_SPACE, 8, seed=3)
    assert a == search.sample(search.DETECTOR_SPACE, 8, seed=3)
    assert a != search.sample(search.DETECTOR_SPACE, 8, seed=4)
    assert len({s["learning_rate"] for s in a}) == 8  # every trial tries a new rate
    assert all(s["batch_size"] in (8, 16, 32) for s in a)


def test_the_fine_round_narrows_around_the_best_and_stays_inside():
    space = [
        Range("learning_rate", "log", 1e-4, 1e-1),
        Range("batch_size", "choice", choices=(8, 16, 32)),
    ]
    done = [
        ({"learning_rate": 2e-3, "batch_size": 16}, 0.80),
        ({"learning_rate": 3e-3, "batch_size": 16}, 0.82),
        ({"learning_rate": 5e-2, "batch_size": 8}, 0.40),
        ({"learning_rate": 2e-4, "batch_size": 32}, 0.30),
        ({"learning_rate": 1e-2, "batch_size": 8}, 0.55),
        ({"learning_rate": 4e-4, "batch_size": 32}, 0.35),
    ]
    lr, batch = search.narrow(space, done, larger_is_better=True)
    assert lr.low <= 2e-3 and lr.high >= 3e-3  # contains the best two
    old_span = math.log10(1e-1) - math.log10(1e-4)
    assert math.log10(lr.high) - math.log10(lr.low) < old_span / 2
    assert lr.low >= 1e-4 and lr.high <= 1e-1 and batch.choices == (16,)
    smaller = search.narrow(space, [(p, -v) for p, v in done], larger_is_better=False)
    assert smaller[0].low <= 2e-3 <= smaller[0].high  # "min" mode ranks the other way


def _measured(trial: dict[str, Any]) -> dict[str, float]:
    return trial


def test_selection_honours_the_satisficing_limits():
    trials: list[dict[str, Any]] = [
        {"n": 1, "map": 0.91, "latency_ms": 80.0, "size_mb": 9.0},
        {"n": 2, "map": 0.88, "latency_ms": 30.0, "size_mb": 9.0},
        {"n": 3, "map": 0.85, "latency_ms": 20.0, "size_mb": 9.0},
        {"n": 4, "map": None, "latency_ms": 10.0, "size_mb": 1.0},
    ]
    best, reasons = selection.pick(
        trials,
        objective=lambda t: t["map"],
        mode="max",
        limits={"latency_ms": 50},
        measured=_measured,
        name=lambda t: f"trial {t['n']}",
    )
    assert best["n"] == 2
    assert "trial 1: latency_ms 80 > 50" in reasons and "trial 4: no optimising metric" in reasons
    assert any(r.startswith("trial 3: 0.85 is not the best") for r in reasons)
    eer_best, _ = selection.pick(
        trials[:3], objective=lambda t: t["map"], mode="min", limits={}, measured=_measured,
        name=lambda t: str(t["n"]),
    )  # fmt: skip
    assert eer_best["n"] == 3


@pytest.mark.parametrize("limit", [5.0, 1.0])
def test_nothing_feasible_says_why(limit):
    only: list[dict[str, Any]] = [{"v": 0.5, "size_mb": 9.0}]
    best, reasons = selection.pick(
        only,
        objective=lambda t: t["v"], mode="max", limits={"size_mb": limit},
        measured=_measured, name=lambda t: "only",
    )  # fmt: skip
    assert best is None and reasons == [f"only: size_mb 9 > {limit:g}"]
