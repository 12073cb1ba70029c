"""Model selection: one optimising metric, subject to satisficing limits (pure, no Django).

The notes' recipe: pick the metric you optimise (mAP@0.5, or EER, lower better) and the
ones that only need to be good enough (CPU latency at most N ms, size at most M MB). The
winner is the best candidate that meets every limit; each other candidate's reason to lose
is said.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeVar

T = TypeVar("T")


def pick(
    candidates: Sequence[T],
    *,
    objective: Callable[[T], float | None],
    mode: Literal["max", "min"] | str,
    limits: Mapping[str, float],
    measured: Callable[[T], Mapping[str, float]],
    name: Callable[[T], str],
) -> tuple[T | None, list[str]]:
    """The best feasible candidate, and a reason for every other one.

    Args:
        objective: the optimising metric (None: not measured, never wins).
        mode: "max" if larger is better, "min" if smaller is.
        limits: satisficing upper bounds, e.g. ``{"latency_ms": 50}``.
        measured: the candidate's satisficing metrics.
        name: how reasons name a candidate.
    """
    reasons: list[str] = []
    feasible: list[tuple[float, T]] = []
    for candidate in candidates:
        value = objective(candidate)
        if value is None:
            reasons.append(f"{name(candidate)}: no optimising metric")
            continue
        got = measured(candidate)
        broken = [
            f"{key} {got.get(key, float('nan')):g} > {limit:g}"
            for key, limit in limits.items()
            if not got.get(key, float("inf")) <= limit
        ]
        if broken:
            reasons.append(f"{name(candidate)}: {', '.join(broken)}")
        else:
            feasible.append((value, candidate))
    if not feasible:
        return None, reasons
    ordered = sorted(feasible, key=lambda vc: vc[0], reverse=mode == "max")
    best_value, best = ordered[0]
    reasons += [f"{name(c)}: {v:.4g} is not the best ({best_value:.4g})" for v, c in ordered[1:]]
    return best, reasons
