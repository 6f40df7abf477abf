"""A bar chart as inline SVG, built on the server (no script, no build step).

The numbers are also given as a table beside the chart, so the plot is never the only way to
read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayChart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    day_labels: list[tuple[float, str]]
    baseline: float
    peak: float


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def day_chart(points: list[tuple[date, float]]) -> DayChart:
    """Geometry of a bar per day (GPU-hours), with four value ticks and weekly day labels."""
    top = _nice_ceiling(max((v for _, v in points), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(points), 1)
    bars, labels = [], []
    for i, (day, value) in enumerate(points):
        h = plot_h * value / top
        x = LEFT + i * slot
        bars.append(
            Bar(x + slot * 0.1, TOP + plot_h - h, slot * 0.8, h, f"{day}: {value:g} GPU-hours")
        )
        if i % 7 == 0 or i == len(points) - 1:
            labels.append((x + slot / 2, day.strftime("%m-%d")))
    ticks = [Tick(TOP + plot_h * (1 - k / 4), f"{top * k / 4:g}") for k in range(5)]
    peak = max((v for _, v in points), default=0.0)
    return DayChart(WIDTH, HEIGHT, bars, ticks, labels, TOP + plot_h, peak)
