"""The consumption chart as inline SVG, drawn on the server (no script, CSP-safe). Pure."""

from __future__ import annotations

from html import escape

MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")


def consumption_svg(points: list[tuple[str, int, bool]], width: int = 360, height: int = 180) -> str:
    """Bars of billed m³ per period ("YYYY-MM", m³, estimated), oldest first (at most 24)."""
    points = points[-24:]
    if not points:
        return ""
    top = max(max(m3 for _, m3, _ in points), 1)
    left, bottom, plot_h = 30, 28, height - 48
    slot = (width - left - 6) / len(points)
    bar = max(slot * 0.7, 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="chart" id="consumption-chart" aria-label="Consumo facturado por mes en metros cúbicos">',
             f'<text x="2" y="12" class="axis">{top} m³</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" class="axis-line"/>']
    for i, (period, m3, estimated) in enumerate(points):
        h = round(plot_h * m3 / top, 1)
        x = round(left + i * slot + (slot - bar) / 2, 1)
        y = round(height - bottom - h, 1)
        month = MONTHS[int(period[5:7]) - 1] if len(period) == 7 and period[5:7].isdigit() else period
        label = escape(f"{month} {period[2:4]}: {m3} m³{' (estimado)' if estimated else ''}")
        parts.append(f'<rect x="{x}" y="{y}" width="{round(bar, 1)}" height="{h}" '
                     f'class="{"bar estimated" if estimated else "bar"}" data-period="{escape(period)}" '
                     f'data-m3="{m3}"><title>{label}</title></rect>')
        parts.append(f'<text x="{round(x + bar / 2, 1)}" y="{height - bottom + 12}" class="tick" '
                     f'text-anchor="middle">{escape(month)}</text>')
        parts.append(f'<text x="{round(x + bar / 2, 1)}" y="{max(y - 3, 10)}" class="value" '
                     f'text-anchor="middle">{m3}</text>')
    parts.append("</svg>")
    return "".join(parts)
