"""Charts drawn on the server as inline SVG (no script, no external asset): bars, with negative values below
the axis, each bar titled with its exact value."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

WIDTH, HEIGHT, PAD = 640, 160, 20


def bars(points: Sequence[tuple[str, Decimal]], *, label: str) -> str:
    """A bar chart of ``(label, value)`` in order; empty text without points."""
    if not points:
        return ""
    top = max((abs(v) for _, v in points), default=Decimal(0)) or Decimal(1)
    has_negative = any(v < 0 for _, v in points)
    axis = HEIGHT / 2 if has_negative else HEIGHT - PAD
    span = (HEIGHT / 2 - PAD) if has_negative else (HEIGHT - 2 * PAD)
    step = (WIDTH - 2 * PAD) / len(points)
    out = [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'xmlns="http://www.w3.org/2000/svg">',
           f'<line x1="{PAD}" y1="{axis:.1f}" x2="{WIDTH - PAD}" y2="{axis:.1f}" class="axis"/>']
    for i, (name, value) in enumerate(points):
        h = float(abs(value) / top) * span
        y = axis - h if value >= 0 else axis
        cls = "bar" if value >= 0 else "bar neg"
        out.append(f'<rect x="{PAD + i * step + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                   f'height="{max(h, 0.5):.1f}" class="{cls}"><title>{escape(name)}: {escape(format(value, "f"))}'
                   f'</title></rect>')
    out.append(f'<text x="{PAD}" y="12" class="legend">{escape(label)} (max {escape(format(top, "f"))})</text>')
    out.append("</svg>")
    return "".join(out)
