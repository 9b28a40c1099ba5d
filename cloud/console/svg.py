"""Charts drawn on the server as SVG (no JavaScript, nothing to download): horizontal bars with
their values written out, so a screen reader and a printout get the numbers too."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

BAR_H = 20
GAP = 6
LABEL_W = 120
VALUE_W = 80


def bars(rows: Sequence[tuple[str, Decimal | int | float]], *, width: int = 340, unit: str = "",
         title: str = "", fmt: str = "{:,.0f}") -> str:
    """One bar per (label, value); negative values are drawn from zero to the left in red."""
    if not rows:
        return '<p class="muted">Sin datos.</p>'
    values = [float(v) for _, v in rows]
    top = max([abs(v) for v in values] + [1e-9])
    span = width - LABEL_W - VALUE_W
    height = len(rows) * (BAR_H + GAP) + GAP
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" '
           f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for i, ((label, _), v) in enumerate(zip(rows, values, strict=True)):
        y = GAP + i * (BAR_H + GAP)
        w = max(1.0, abs(v) / top * span) if v else 0.0
        colour = "#b3261e" if v < 0 else "#0a5fa8"
        out.append(f'<text x="0" y="{y + 14}">{escape(label[:24])}</text>')
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}"/>')
        out.append(f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 14}">{escape(fmt.format(v))}{escape(unit)}</text>')
    out.append("</svg>")
    return "".join(out)


def columns(points: Sequence[tuple[str, Decimal | int | float]], *, width: int = 340, height: int = 150,
            title: str = "") -> str:
    """A column per (label, value) over time (e.g. readings per day), labels under every other one."""
    if not points:
        return '<p class="muted">Sin datos.</p>'
    values = [max(0.0, float(v)) for _, v in points]
    top = max(values + [1e-9])
    n = len(points)
    slot = (width - 10) / n
    plot_h = height - 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="100%" '
           f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for i, ((label, _), v) in enumerate(zip(points, values, strict=True)):
        h = v / top * plot_h
        x = 5 + i * slot
        out.append(f'<rect x="{x + 1:.1f}" y="{plot_h - h + 5:.1f}" width="{max(1.0, slot - 2):.1f}" '
                   f'height="{h:.1f}" fill="#0a5fa8"><title>{escape(label)}: {v:,.0f}</title></rect>')
        if i % max(1, n // 8) == 0:
            out.append(f'<text x="{x:.1f}" y="{height - 8}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
