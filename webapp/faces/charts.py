"""SVG geometry for a verifier's report: the ROC curve and the two distance histograms.

Pure Python (no Django, no numpy): it turns the lists a ``Calibration`` stores into chart
coordinates that a template draws as ``<polyline>``/``<polygon>``/``<line>``. Every x and
y here is in SVG user units of a :class:`Frame` (``webapp.charts``, shared with the
detector's charts); rates are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webapp.charts import Frame, Tick, is_number, nice_ticks

__all__ = [
    "CalibrationUnreadable",
    "Frame",
    "HistogramChart",
    "Marker",
    "RocChart",
    "Tick",
    "VLine",
    "check_calibration",
    "histogram_chart",
    "nice_ticks",
    "roc_chart",
]

CALIBRATION_LISTS = (
    "roc_far",
    "roc_tar",
    "roc_thresholds",
    "hist_edges",
    "hist_same",
    "hist_different",
)
CALIBRATION_NUMBERS = (
    "eer",
    "eer_threshold",
    "auc",
    "tar_at_far_1pct",
    "threshold_far_1pct",
    "tar_at_far_01pct",
    "threshold_far_01pct",
    "n_same",
    "n_different",
)
# The lowest FAR the log axis shows; FAR 0 (accept nothing) is drawn on the left edge.
MIN_LOG_FAR = 1e-5


class CalibrationUnreadable(ValueError):
    """``metrics["calibration"]`` is there but cannot be drawn (missing or odd lists)."""


@dataclass(frozen=True)
class Marker:
    """A labelled point on the ROC curve (an operating point)."""

    x: float
    y: float
    label: str
    css: str


@dataclass(frozen=True)
class VLine:
    """A vertical line across a histogram at a distance threshold."""

    x: float
    label: str
    css: str


@dataclass(frozen=True)
class RocChart:
    frame: Frame
    points: str  # "x,y x,y ..." one per stored ROC point, by increasing threshold
    count: int
    log_far: bool
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    markers: list[Marker]
    chance: str  # the diagonal TAR = FAR, as polyline points


@dataclass(frozen=True)
class HistogramChart:
    frame: Frame
    same: str  # polygon points of the same-person step outline
    different: str
    bins: int
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    lines: list[VLine] = field(default_factory=list)


def check_calibration(calibration: Any) -> Mapping[str, Any]:
    """The calibration dict if every list and number a chart needs is there and consistent.

    Raises:
        CalibrationUnreadable: with what is wrong, for the page to say.
    """
    if not isinstance(calibration, Mapping):
        raise CalibrationUnreadable("the calibration is not a dictionary")
    missing = [k for k in (*CALIBRATION_LISTS, *CALIBRATION_NUMBERS) if k not in calibration]
    if missing:
        raise CalibrationUnreadable(f"missing {', '.join(missing)}")
    for key in CALIBRATION_LISTS:
        values = calibration[key]
        if not isinstance(values, list) or not all(is_number(v) for v in values):
            raise CalibrationUnreadable(f"{key} is not a list of numbers")
    for key in CALIBRATION_NUMBERS:
        if not is_number(calibration[key]):
            raise CalibrationUnreadable(f"{key} is not a number")
    roc = {len(calibration[k]) for k in ("roc_far", "roc_tar", "roc_thresholds")}
    bins = len(calibration["hist_same"])
    if len(roc) != 1 or roc == {0}:
        raise CalibrationUnreadable("the ROC lists differ in length or are empty")
    if bins == 0 or len(calibration["hist_different"]) != bins:
        raise CalibrationUnreadable("the histograms differ in length or are empty")
    if len(calibration["hist_edges"]) != bins + 1:
        raise CalibrationUnreadable("hist_edges must have one more value than each histogram")
    return calibration


# ---------------------------------------------------------------------------- ROC


def _far_axis(far: Sequence[float], log_far: bool) -> tuple[float, list[Tick], Frame]:
    """The log axis's lowest decade (or 0 for linear), its ticks, and the frame."""
    frame = Frame()
    if not log_far:
        ticks = [Tick(frame.x(v), f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1.0)]
        return 0.0, ticks, frame
    smallest = min((f for f in far if f > 0), default=1e-3)
    floor = max(MIN_LOG_FAR, 10 ** math.floor(math.log10(smallest)))
    floor = min(floor, 1e-2)  # show at least two decades
    decades = round(-math.log10(floor))
    ticks = [
        Tick(frame.x(i / decades), _percent_label(10.0 ** (i - decades)))
        for i in range(decades + 1)
    ]
    return floor, ticks, frame


def _percent_label(rate: float) -> str:
    percent = rate * 100
    return f"{percent:.0f}%" if percent >= 1 else f"{percent:.{-math.floor(math.log10(percent))}f}%"


def _far_fraction(far: float, floor: float) -> float:
    if floor == 0.0:
        return min(max(far, 0.0), 1.0)
    clamped = min(max(far, floor), 1.0)
    return (math.log10(clamped) - math.log10(floor)) / -math.log10(floor)


def roc_chart(calibration: Mapping[str, Any], *, log_far: bool = True) -> RocChart:
    """The ROC as SVG points: FAR on x (log or linear), TAR on y, one point per stored point.

    Args:
        calibration: a checked calibration dict (see :func:`check_calibration`).
        log_far: log-scaled FAR axis (FAR 0 is drawn on its left edge).
    """
    far = [float(v) for v in calibration["roc_far"]]
    tar = [float(v) for v in calibration["roc_tar"]]
    floor, x_ticks, frame = _far_axis(far, log_far)
    points = " ".join(
        f"{frame.x(_far_fraction(f, floor))},{frame.y(t)}" for f, t in zip(far, tar, strict=True)
    )
    y_ticks = [Tick(frame.y(v), f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1.0)]
    # TAR = FAR (a coin toss): a straight diagonal on the linear axis, a curve on the log one.
    chance_far = [floor ** (1 - i / 40) for i in range(41)] if log_far else [0.0, 1.0]
    eer = float(calibration["eer"])
    markers = [
        Marker(frame.x(_far_fraction(eer, floor)), frame.y(1 - eer), f"EER {eer:.2%}", "eer"),
        *_operating_marker(calibration, "1pct", "FAR 1%", floor, frame),
        *_operating_marker(calibration, "01pct", "FAR 0.1%", floor, frame),
    ]
    return RocChart(
        frame=frame,
        points=points,
        count=len(far),
        log_far=log_far,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        markers=markers,
        chance=" ".join(f"{frame.x(_far_fraction(f, floor))},{frame.y(f)}" for f in chance_far),
    )


def _operating_marker(
    calibration: Mapping[str, Any], suffix: str, label: str, floor: float, frame: Frame
) -> list[Marker]:
    """The stored ROC point of the FAR 1% (or 0.1%) threshold, if it is among them."""
    threshold = float(calibration[f"threshold_far_{suffix}"])
    thresholds = [float(v) for v in calibration["roc_thresholds"]]
    if not thresholds:
        return []
    i = min(range(len(thresholds)), key=lambda k: abs(thresholds[k] - threshold))
    far, tar = float(calibration["roc_far"][i]), float(calibration["roc_tar"][i])
    text = f"{label}: TAR {float(calibration[f'tar_at_far_{suffix}']):.1%}"
    return [Marker(frame.x(_far_fraction(far, floor)), frame.y(tar), text, f"far-{suffix}")]


# ---------------------------------------------------------------------------- histograms


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total > 0 else 0.0 for c in counts]


def _step_outline(edges: Sequence[float], shares: Sequence[float], top: float, frame: Frame) -> str:
    """A closed step shape: along the baseline, up and across each bin, back down."""
    lo, hi = edges[0], edges[-1]
    span = hi - lo or 1.0

    def x(v: float) -> float:
        return frame.x((v - lo) / span)

    points = [(x(edges[0]), frame.y(0))]
    for i, share in enumerate(shares):
        height = frame.y(share / top)
        points += [(x(edges[i]), height), (x(edges[i + 1]), height)]
    points.append((x(edges[-1]), frame.y(0)))
    return " ".join(f"{px},{py}" for px, py in points)


def histogram_chart(
    calibration: Mapping[str, Any], lines: Sequence[tuple[float, str, str]] = ()
) -> HistogramChart:
    """Same-person and different-person distance histograms, overlaid, as shares of pairs.

    Each histogram is divided by its own pair count, so both are visible however unequal
    the counts (there are usually far more different-person pairs).

    Args:
        calibration: a checked calibration dict.
        lines: ``(distance, label, css class)`` for vertical lines such as the threshold;
            a distance outside the histogram's range is drawn on the nearer edge.
    """
    frame = Frame()
    edges = [float(v) for v in calibration["hist_edges"]]
    same = _shares(calibration["hist_same"])
    different = _shares(calibration["hist_different"])
    top = max([*same, *different, 1e-9])
    top = next((t for t in nice_ticks(0.0, top * 1.5, 6) if t >= top), top)
    lo, hi = edges[0], edges[-1]
    span = hi - lo or 1.0
    x_ticks = [Tick(frame.x((v - lo) / span), f"{v:g}") for v in nice_ticks(lo, hi)]
    y_ticks = [Tick(frame.y(v / top), f"{v:.0%}") for v in nice_ticks(0.0, top, 5)]
    vlines = [
        VLine(frame.x(min(max((d - lo) / span, 0.0), 1.0)), label, css) for d, label, css in lines
    ]
    return HistogramChart(
        frame=frame,
        same=_step_outline(edges, same, top, frame),
        different=_step_outline(edges, different, top, frame),
        bins=len(same),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        lines=vlines,
    )
