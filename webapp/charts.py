"""SVG chart geometry shared by the model and evaluation pages.

Pure Python (no Django, no numpy): it turns stored lists (curves, matrices) into chart
coordinates that templates draw as ``<polyline>``/``<line>``/``<circle>`` and table cells.
Every x and y is in SVG user units of a :class:`Frame`; rates are fractions in [0, 1].
Colours come from a fixed palette (never from data), so templates may put them in
attributes as they are.

The verifier's ROC and distance histograms (``webapp.faces.charts``) use the frame, ticks
and :func:`nice_ticks` from here; detectors add precision-recall curves per class
(:func:`pr_chart`), their score calibration (:func:`calibration_chart`) and the confusion
matrix as a heat-map table (:func:`heatmap`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Distinguishable on white, in the order classes are listed.
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
PERCENT_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Frame:
    """A chart's canvas: the SVG size and the plot area inside the margins."""

    width: int = 520
    height: int = 340
    left: int = 58
    right: int = 18
    top: int = 14
    bottom: int = 46

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom

    @property
    def plot_width(self) -> int:
        return self.plot_right - self.left

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.top

    @property
    def center_x(self) -> float:
        return self.left + self.plot_width / 2

    @property
    def center_y(self) -> float:
        return self.top + self.plot_height / 2

    def x(self, fraction: float) -> float:
        """SVG x of a fraction (0 = left edge of the plot, 1 = right edge)."""
        return round(self.left + fraction * (self.plot_right - self.left), 2)

    def y(self, fraction: float) -> float:
        """SVG y of a fraction (0 = bottom of the plot, 1 = top)."""
        return round(self.plot_bottom - fraction * (self.plot_bottom - self.top), 2)


@dataclass(frozen=True)
class Tick:
    position: float  # SVG units along its axis
    label: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten) within [low, high]."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------- unit charts


@dataclass(frozen=True)
class Point:
    """A labelled point on a curve (an operating point)."""

    x: float
    y: float
    label: str
    color: str


@dataclass(frozen=True)
class Series:
    """One curve: its SVG points ("x,y x,y ..."), how many, its name and colour."""

    name: str
    points: str
    count: int
    color: str
    slug: str  # for element ids: "pr-<slug>"
    marker: Point | None = None


@dataclass(frozen=True)
class LineChart:
    """Curves on the unit square (both axes 0..1), with ticks and optional guides."""

    frame: Frame
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    diagonal: str = ""  # polyline points of y = x, when it means something
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (SVG y, label)


def _clamp(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def _polyline(frame: Frame, xs: Sequence[float], ys: Sequence[float]) -> str:
    pairs = zip(xs, ys, strict=True)
    return " ".join(f"{frame.x(_clamp(x))},{frame.y(_clamp(y))}" for x, y in pairs)


def _unit_ticks(frame: Frame) -> tuple[list[Tick], list[Tick]]:
    xs = [Tick(frame.x(v), f"{v:.0%}") for v in PERCENT_TICKS]
    ys = [Tick(frame.y(v), f"{v:.0%}") for v in PERCENT_TICKS]
    return xs, ys


def slug(name: str) -> str:
    """A name made safe for an element id (letters, digits, dashes)."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return text or "class"


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, list) or not all(is_number(v) for v in values):
        return None
    return [float(v) for v in values]


def pr_chart(
    curves: Mapping[str, Any], operating: Mapping[str, tuple[float, float]] | None = None
) -> LineChart | None:
    """Precision (y) against recall (x) per class, with each class's operating point.

    Args:
        curves: class name -> ``{"recall": [...], "precision": [...]}`` (an evaluation's
            ``metrics["pr_curves"]``); malformed entries are left out.
        operating: class name -> (recall, precision) at the working threshold.

    Returns:
        ``None`` when no curve can be drawn.
    """
    frame = Frame()
    series = []
    for i, (name, curve) in enumerate(curves.items()):
        recall = _numbers(curve.get("recall")) if isinstance(curve, Mapping) else None
        precision = _numbers(curve.get("precision")) if isinstance(curve, Mapping) else None
        if not recall or not precision or len(recall) != len(precision):
            continue
        color = PALETTE[i % len(PALETTE)]
        marker = None
        if operating and name in operating:
            r, p = operating[name]
            marker = Point(
                frame.x(_clamp(r)), frame.y(_clamp(p)), f"{name} at the threshold", color
            )
        series.append(
            Series(
                name, _polyline(frame, recall, precision), len(recall), color, slug(name), marker
            )
        )
    if not series:
        return None
    x_ticks, y_ticks = _unit_ticks(frame)
    return LineChart(frame, series, x_ticks, y_ticks)


def calibration_chart(
    calibration: Any, class_names: Sequence[str], threshold: float | None
) -> LineChart | None:
    """A detector's score calibration: raw score (x) -> probability of a true positive (y).

    One curve for all classes and one per class that has its own, drawn from the stored
    breakpoints (flat beyond the ends, as the calibration reads them); the diagonal is what
    the raw score would mean were it a probability; the working threshold is a horizontal
    line (it is on the calibrated scale).

    Args:
        calibration: ``metrics["score_calibration"]`` (``ScoreCalibration.to_dict()``).
        class_names: the version's classes, by index.
        threshold: the working threshold, or ``None``.

    Returns:
        ``None`` when the calibration cannot be read.
    """
    if not isinstance(calibration, Mapping):
        return None
    frame = Frame()
    curves: list[tuple[str, Any]] = [("all classes", calibration.get("overall"))]
    per_class = calibration.get("per_class")
    if isinstance(per_class, Mapping):
        for key, curve in sorted(per_class.items(), key=lambda kv: str(kv[0])):
            index = int(key) if str(key).isdigit() else -1
            name = class_names[index] if 0 <= index < len(class_names) else f"class {key}"
            curves.append((name, curve))
    series = []
    for i, (name, curve) in enumerate(curves):
        xs = _numbers(curve.get("x")) if isinstance(curve, Mapping) else None
        ys = _numbers(curve.get("y")) if isinstance(curve, Mapping) else None
        if not xs or not ys or len(xs) != len(ys):
            continue
        xs, ys = [0.0, *xs, 1.0], [ys[0], *ys, ys[-1]]  # flat beyond the breakpoints
        color = "#111827" if i == 0 else PALETTE[(i - 1) % len(PALETTE)]
        series.append(Series(name, _polyline(frame, xs, ys), len(xs) - 2, color, slug(name)))
    if not series:
        return None
    x_ticks, y_ticks = _unit_ticks(frame)
    hlines = []
    if threshold is not None and is_number(threshold):
        hlines.append((frame.y(_clamp(threshold)), f"working threshold {threshold:.3f}"))
    diagonal = _polyline(frame, [0.0, 1.0], [0.0, 1.0])
    return LineChart(frame, series, x_ticks, y_ticks, diagonal, hlines)


# ---------------------------------------------------------------------------- heat-map


@dataclass(frozen=True)
class Cell:
    """One cell of a heat-map table: its count, its share of its row, the shade to draw."""

    count: int
    share: float  # of the row's total, 0 for an empty row
    alpha: float  # 0..0.85, rounded: the cell's background opacity
    diagonal: bool  # a correct prediction (true class = predicted class)


@dataclass(frozen=True)
class HeatRow:
    label: str
    cells: list[Cell]
    total: int


def heatmap(matrix: Any, labels: Sequence[str]) -> list[HeatRow] | None:
    """Rows of a confusion matrix as shaded cells (shade = share of the row).

    Args:
        matrix: ``(C + 1) x (C + 1)`` counts, rows true class then background.
        labels: the C + 1 row and column names.

    Returns:
        ``None`` when the matrix is not a square of counts matching ``labels``.
    """
    n = len(labels)
    if not isinstance(matrix, list) or len(matrix) != n:
        return None
    rows = []
    for r, (label, row) in enumerate(zip(labels, matrix, strict=True)):
        if not isinstance(row, list) or len(row) != n or not all(is_number(v) for v in row):
            return None
        total = int(sum(row))
        cells = []
        for c, value in enumerate(row):
            share = value / total if total else 0.0
            cells.append(Cell(int(value), share, round(0.85 * share, 3), r == c and r < n - 1))
        rows.append(HeatRow(str(label), cells, total))
    return rows
