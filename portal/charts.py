"""Server-rendered SVG charts for portal pages: horizontal bar charts, accessible, no JavaScript.

A chart is an `<svg role="img">` with a `<title>` and a `<desc>` stating every value, so a screen reader
reads the numbers; pages also print the numbers in a small table beside it. Labels sit above their bars
so the chart stays legible when a phone scales it down.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 400  # viewBox units; the SVG scales to its container's width
ROW = 40  # one bar: its label line and the bar itself
BAR_HEIGHT = 14
TONES = {"": "#4f46e5", "ok": "#047857", "warn": "#d97706", "danger": "#b91c1c", "muted": "#9ca3af"}


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal | int
    display: str  # the value as people read it: "1,250.00 USD", "12"
    tone: str = ""  # a key of TONES


def bar_chart(*, chart_id: str, title: str, bars: list[Bar]) -> SafeString:
    """A horizontal bar chart, bars scaled to the largest value (a zero value draws no bar)."""
    peak = max((Decimal(bar.value) for bar in bars), default=Decimal(0))
    height = max(ROW, ROW * len(bars))
    description = "; ".join(f"{bar.label}: {bar.display}" for bar in bars) or "No data"
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]
    for index, bar in enumerate(bars):
        top = index * ROW
        width = float(Decimal(bar.value) / peak * WIDTH) if peak > 0 else 0.0
        color = TONES.get(bar.tone, TONES[""])
        parts.append(
            f'<g class="chart-row" aria-hidden="true">'
            f'<text x="0" y="{top + 13}" class="chart-label">{escape(bar.label)}</text>'
            f'<text x="{WIDTH}" y="{top + 13}" text-anchor="end" class="chart-value">{escape(bar.display)}</text>'
            f'<rect x="0" y="{top + 19}" width="{WIDTH}" height="{BAR_HEIGHT}" rx="4" class="chart-track"/>'
            f'<rect x="0" y="{top + 19}" width="{width:.1f}" height="{BAR_HEIGHT}" rx="4" fill="{color}"/>'
            f"</g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
