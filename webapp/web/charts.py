"""Chart geometry for inline SVG: series of counts mapped to coordinates, in pure Python.

The template only places what this computes (no scripts, no inline styles), so the
mapping is unit-tested here rather than by looking at pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    value: int


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    points: list[Point]

    # The last bucket is still running (today, this week): drawn apart, dashed.
    last_partial: bool = False

    @property
    def polyline(self) -> str:
        """The ``points`` of the solid ``<polyline>`` (without a running last bucket)."""
        points = self.points[:-1] if self.last_partial else self.points
        return _points(points)

    @property
    def tail(self) -> str:
        """The dashed segment from the last complete bucket to the running one, if any."""
        return _points(self.points[-2:]) if self.last_partial and len(self.points) > 1 else ""


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Column:
    """The band of one bucket (hover target with a tooltip)."""

    x: float
    width: float
    title: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    series: list[Series]
    y_ticks: list[Tick]
    x_labels: list[Label]
    columns: list[Column]


def nice_scale(maximum: int, ticks: int = 4) -> tuple[int, int]:
    """``(top, step)``: a round top of the y axis >= ``maximum`` split in whole steps.

    Steps are 1, 2 or 5 times a power of ten, so gridlines fall on readable numbers.
    """
    if maximum <= 0:
        return 1, 1
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    return step * math.ceil(maximum / step), step


def _points(points: Sequence[Point]) -> str:
    return " ".join(f"{_fmt(p.x)},{_fmt(p.y)}" for p in points)


def _fmt(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    titles: Sequence[str] | None = None,
    width: int = 960,
    height: int = 260,
    margin: tuple[int, int, int, int] = (12, 16, 30, 48),  # top, right, bottom, left
    max_x_labels: int = 7,
    last_partial: bool = False,
) -> LineChart:
    """Map ``series`` (key, label, one value per bucket) onto a ``width`` x ``height`` box.

    Buckets are equal bands along x (a point sits in the middle of its band); y runs
    from 0 at the bottom of the plot to a round top at its top edge.
    """
    count = len(labels)
    if any(len(values) != count for _, _, values in series):
        raise ValueError("every series needs one value per label")
    top_m, right_m, bottom_m, left_m = margin
    left, top = float(left_m), float(top_m)
    right, bottom = float(width - right_m), float(height - bottom_m)
    plot_width, plot_height = right - left, bottom - top
    band = plot_width / count if count else plot_width
    y_top, step = nice_scale(max((max(v, default=0) for _, _, v in series), default=0))

    def x_of(index: int) -> float:
        return round(left + band * (index + 0.5), 1)

    def y_of(value: int) -> float:
        return round(bottom - plot_height * value / y_top, 1)

    mapped = [
        Series(
            key,
            label,
            [Point(x_of(i), y_of(v), v) for i, v in enumerate(values)],
            last_partial=last_partial,
        )
        for key, label, values in series
    ]
    y_ticks = [Tick(y_of(v), v) for v in range(0, y_top + 1, step)]
    every = max(1, math.ceil(count / max_x_labels))
    # Label from the newest bucket backwards, so the latest one always has its date.
    x_labels = sorted(
        (Label(x_of(i), labels[i]) for i in range(count - 1, -1, -every)), key=lambda lb: lb.x
    )
    titles = titles or labels
    columns = [Column(round(left + band * i, 1), round(band, 1), titles[i]) for i in range(count)]
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        series=mapped,
        y_ticks=y_ticks,
        x_labels=x_labels,
        columns=columns,
    )
