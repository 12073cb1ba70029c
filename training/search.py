"""Random search of hyper-parameters, as the notes advise: random, not a grid; rates on a
log scale; coarse, then finer around what worked (pure, no Django).

A log-scale range ``[10**a, 10**b]`` is sampled as ``r`` uniform in ``[a, b]``, value
``10**r``. The finer round narrows every range to the span of the best trials of the first
(``FINE_TOP`` of them, or the best third), padded on each side by a quarter of their own
span and at least a tenth of the old one, never leaving it, and samples again inside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

Scale = Literal["log", "linear", "choice"]
FINE_TOP = 3
FINE_PAD = 0.25
FINE_MIN_PAD = 0.1


@dataclass(frozen=True)
class Range:
    """One hyper-parameter's range: ``low..high`` on a log or linear scale, or choices."""

    name: str
    scale: Scale
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def sample(self, rng: np.random.Generator) -> Any:
        if self.scale == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.scale == "log":
            return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))
        return float(rng.uniform(self.low, self.high))

    def narrowed(self, best: Sequence[Any]) -> Range:
        """The range spanned by ``best`` values, padded, inside this one."""
        if self.scale == "choice":
            kept = tuple(c for c in self.choices if c in set(best))
            return replace(self, choices=kept or self.choices)
        log = self.scale == "log"
        low, high = _to(self.low, log), _to(self.high, log)
        values = [_to(float(v), log) for v in best]
        # Pad by a quarter of the best values' own span, and at least a tenth of the old
        # range, so a single best value still leaves room to look around it.
        pad = max(FINE_PAD * (max(values) - min(values)), FINE_MIN_PAD * (high - low))
        new_low, new_high = max(low, min(values) - pad), min(high, max(values) + pad)
        return replace(self, low=_back(new_low, log), high=_back(new_high, log))


def _to(value: float, log: bool) -> float:
    return math.log10(value) if log else value


def _back(value: float, log: bool) -> float:
    return float(10**value) if log else value


# The detector's search space (ranges around its tuned defaults: Adam at 3e-3, cosine).
DETECTOR_SPACE = (
    Range("learning_rate", "log", 3e-4, 1e-2),
    Range("weight_decay", "log", 1e-6, 1e-3),
    Range("decay_rate", "log", 1e-2, 1.0),  # used by inverse-time decay
    Range("batch_size", "choice", choices=(8, 16, 32)),
    Range("lr_schedule", "choice", choices=("cosine", "inverse_time", "step")),
)


def sample(space: Sequence[Range], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random settings, reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return [{r.name: r.sample(rng) for r in space} for _ in range(n)]


def narrow(
    space: Sequence[Range], done: Sequence[tuple[dict[str, Any], float]], *, larger_is_better: bool
) -> list[Range]:
    """The finer space: each range narrowed to the best trials' values (``done``: the
    settings and the optimising metric of each finished trial)."""
    ranked = sorted(done, key=lambda d: d[1], reverse=larger_is_better)
    top = ranked[: max(1, min(FINE_TOP, math.ceil(len(ranked) / 3)))]
    narrowed = []
    for r in space:
        values = [params[r.name] for params, _ in top if r.name in params]
        narrowed.append(r.narrowed(values) if values else r)
    return narrowed


def coarse_trials(config: Any, n: int) -> list[dict[str, Any]]:
    """The first round's settings for a run (``training.run_config.RunConfig``)."""
    return sample(DETECTOR_SPACE, n, seed=config.search.seed if config.search else 0)


def fine_trials(
    config: Any, done: Sequence[tuple[dict[str, Any], float]], n: int
) -> list[dict[str, Any]]:
    """The second round's settings, sampled in the space narrowed around ``done``'s best."""
    _, mode = config.objective
    space = narrow(DETECTOR_SPACE, done, larger_is_better=mode == "max")
    seed = (config.search.seed if config.search else 0) + 1
    return sample(space, n, seed=seed)
