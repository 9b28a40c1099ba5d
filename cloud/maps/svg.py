"""The network map as a self-contained SVG document. Pure: layers in, text out.

No tile server and no script: the vector layers are drawn on a plain background in an
equirectangular projection scaled by cos(latitude) (true shapes at a city's scale), with a
scale bar, a north arrow and a legend. Every marker carries a `<title>` (its tooltip), a
`class` naming its layer (`marker-anomaly`, `marker-work-order`, …) and, when given, a link.
Dense service points arrive already binned into grid cells (`Cell`) and are drawn as shaded
squares with their count, so the document stays small whatever the number of contracts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

EARTH_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Point:
    """A feature at (lat, lon): `layer` is one of LAYERS' keys."""

    layer: str
    lat: float
    lon: float
    label: str
    id: str = ""
    href: str | None = None


@dataclass(frozen=True)
class Cell:
    """`count` service points inside the box (lat0, lon0)–(lat1, lon1)."""

    lat0: float
    lon0: float
    lat1: float
    lon1: float
    count: int


@dataclass(frozen=True)
class Area:
    """A zone or district outline: its bounding box, label and number of service points."""

    code: str
    lat0: float
    lon0: float
    lat1: float
    lon1: float
    count: int = 0


@dataclass
class Layers:
    title: str
    areas: list[Area] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    # mains between an asset and the one feeding it: (lat, lon, lat, lon)
    mains: list[tuple[float, float, float, float]] = field(default_factory=list)


# layer → (legend label in Spanish, shape, fill, size px); drawn in this order (markers last, on top)
LAYERS: dict[str, tuple[str, str, str, float]] = {
    "service_point": ("Punto de servicio", "circle", "#2b6cb0", 2.5),
    "service_point_no_meter": ("Punto sin medidor", "circle", "#a0aec0", 2.5),
    "valve": ("Válvula", "triangle", "#2f855a", 5.0),
    "tank": ("Tanque", "square", "#2c7a7b", 7.0),
    "pump_station": ("Bombeo / pozo", "pump", "#553c9a", 7.0),
    "district_meter": ("Macromedidor", "diamond", "#b7791f", 7.0),
    "work_order": ("Orden de trabajo abierta", "pin", "#dd6b20", 7.0),
    "anomaly": ("Anomalía abierta", "alert", "#c53030", 8.0),
}


@dataclass(frozen=True)
class Frame:
    """Projection of a bounding box into a width × height pixel area with a margin."""

    lat0: float
    lon0: float
    lat1: float
    lon1: float
    width: int
    height: int
    margin: int = 40

    @property
    def kx(self) -> float:
        return math.cos(math.radians((self.lat0 + self.lat1) / 2))

    @property
    def scale(self) -> float:
        """Pixels per degree of latitude."""
        span_x = max((self.lon1 - self.lon0) * self.kx, 1e-6)
        span_y = max(self.lat1 - self.lat0, 1e-6)
        return min((self.width - 2 * self.margin) / span_x, (self.height - 2 * self.margin) / span_y)

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        s = self.scale
        cx = (self.lon0 + self.lon1) / 2
        cy = (self.lat0 + self.lat1) / 2
        return (self.width / 2 + (lon - cx) * self.kx * s, self.height / 2 - (lat - cy) * s)


def bounds(layers: Layers, pad: float = 0.05) -> tuple[float, float, float, float]:
    """(lat0, lon0, lat1, lon1) around everything drawn, padded; a lone point gets ~1 km around it."""
    lats: list[float] = []
    lons: list[float] = []
    for p in layers.points:
        lats.append(p.lat)
        lons.append(p.lon)
    for b in [(a.lat0, a.lon0, a.lat1, a.lon1) for a in layers.areas] + [
            (c.lat0, c.lon0, c.lat1, c.lon1) for c in layers.cells]:
        lats += [b[0], b[2]]
        lons += [b[1], b[3]]
    if not lats:
        return 20.5, -100.5, 20.7, -100.3  # Querétaro, so an empty map still shows a frame
    lat0, lat1, lon0, lon1 = min(lats), max(lats), min(lons), max(lons)
    dlat = max(lat1 - lat0, 0.01) * pad
    dlon = max(lon1 - lon0, 0.01) * pad
    return lat0 - dlat, lon0 - dlon, lat1 + dlat, lon1 + dlon


def _f(v: float) -> str:
    return f"{v:.1f}"


def _shape(shape: str, x: float, y: float, r: float, fill: str) -> str:
    if shape == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" fill="{fill}"/>'
    if shape == "square":
        return f'<rect x="{_f(x - r / 2)}" y="{_f(y - r / 2)}" width="{r}" height="{r}" fill="{fill}" stroke="#fff"/>'
    if shape == "triangle":
        return (f'<path d="M{_f(x)} {_f(y - r)}L{_f(x + r)} {_f(y + r * 0.8)}L{_f(x - r)} {_f(y + r * 0.8)}Z" '
                f'fill="{fill}" stroke="#fff" stroke-width="0.8"/>')
    if shape == "diamond":
        return (f'<path d="M{_f(x)} {_f(y - r)}L{_f(x + r)} {_f(y)}L{_f(x)} {_f(y + r)}L{_f(x - r)} {_f(y)}Z" '
                f'fill="{fill}" stroke="#fff"/>')
    if shape == "pump":
        return (f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r * 0.8}" fill="{fill}" stroke="#fff"/>'
                f'<path d="M{_f(x - r * 0.5)} {_f(y)}H{_f(x + r * 0.5)}M{_f(x)} {_f(y - r * 0.5)}V{_f(y + r * 0.5)}" '
                f'stroke="#fff" stroke-width="1.5"/>')
    if shape == "pin":
        return (f'<path d="M{_f(x)} {_f(y)}l{-r * 0.7:.1f} {-r * 1.2:.1f}a{r * 0.8:.1f} {r * 0.8:.1f} 0 1 1 '
                f'{r * 1.4:.1f} 0Z" fill="{fill}" stroke="#fff"/>')
    # alert: a ringed dot that stands out above everything else
    return (f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r}" fill="none" stroke="{fill}" stroke-width="2.5"/>'
            f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{r * 0.4:.1f}" fill="{fill}"/>')


def _scale_bar(frame: Frame) -> str:
    """A bar of a round length (50 m … 100 km) near 1/5 of the map width."""
    m_per_px = EARTH_M_PER_DEG / frame.scale
    target = m_per_px * frame.width / 5
    length = 50.0
    for step in (50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000):
        if step <= target:
            length = step
    px = length / m_per_px
    x0, y0 = 20, frame.height - 18
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    return (f'<g class="scale"><path d="M{x0} {y0}h{_f(px)}" stroke="#222" stroke-width="3"/>'
            f'<text x="{x0}" y="{y0 - 6}" font-size="11">{text}</text></g>')


def _legend(frame: Frame, used: Iterable[str], cells: bool) -> str:
    rows = [k for k in LAYERS if k in set(used)]
    x0 = frame.width - 190
    h = 16 * (len(rows) + (1 if cells else 0)) + 10
    out = [f'<g class="legend"><rect x="{x0 - 8}" y="8" width="188" height="{h}" fill="#fff" '
           f'fill-opacity="0.9" stroke="#ccc"/>']
    y = 22
    if cells:
        out.append(f'<rect x="{x0 - 3}" y="{y - 6}" width="8" height="8" fill="#2b6cb0" fill-opacity="0.5"/>'
                   f'<text x="{x0 + 12}" y="{y + 2}" font-size="11">Puntos de servicio (densidad)</text>')
        y += 16
    for k in rows:
        label, shape, fill, size = LAYERS[k]
        out.append(_shape(shape, x0 + 1, y - 2, min(size, 6.0), fill))
        out.append(f'<text x="{x0 + 12}" y="{y + 2}" font-size="11">{escape(label)}</text>')
        y += 16
    out.append("</g>")
    return "".join(out)


def render(layers: Layers, width: int = 960, height: int = 640) -> str:
    """The map as an SVG document (UTF-8 text)."""
    lat0, lon0, lat1, lon1 = bounds(layers)
    fr = Frame(lat0, lon0, lat1, lon1, width, height)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="sans-serif" role="img" aria-label={quoteattr(layers.title)}>',
           f'<title>{escape(layers.title)}</title>',
           f'<rect width="{width}" height="{height}" fill="#f4f1ea"/>']
    out.append('<g class="areas">')
    for a in layers.areas:
        x0, y0 = fr.xy(a.lat1, a.lon0)
        x1, y1 = fr.xy(a.lat0, a.lon1)
        out.append(f'<g class="area" data-code={quoteattr(a.code)}><title>{escape(a.code)}: {a.count} puntos</title>'
                   f'<rect x="{_f(x0 - 6)}" y="{_f(y0 - 6)}" width="{_f(x1 - x0 + 12)}" height="{_f(y1 - y0 + 12)}" '
                   f'rx="8" fill="#e2e8f0" fill-opacity="0.5" stroke="#718096" stroke-dasharray="4 3"/>'
                   f'<text x="{_f(x0 - 2)}" y="{_f(y0 - 10)}" font-size="12" fill="#4a5568">{escape(a.code)}</text></g>')
    out.append("</g>")
    if layers.cells:
        top = max(c.count for c in layers.cells)
        out.append('<g class="cells">')
        for c in layers.cells:
            x0, y0 = fr.xy(c.lat1, c.lon0)
            x1, y1 = fr.xy(c.lat0, c.lon1)
            alpha = 0.15 + 0.7 * math.sqrt(c.count / top)
            out.append(f'<rect class="cell" x="{_f(x0)}" y="{_f(y0)}" width="{_f(max(x1 - x0, 1))}" '
                       f'height="{_f(max(y1 - y0, 1))}" fill="#2b6cb0" fill-opacity="{alpha:.2f}">'
                       f'<title>{c.count} puntos de servicio</title></rect>')
        out.append("</g>")
    if layers.mains:
        out.append('<g class="mains" stroke="#4a5568" stroke-width="1.5" stroke-opacity="0.6">')
        for la0, lo0, la1, lo1 in layers.mains:
            x0, y0 = fr.xy(la0, lo0)
            x1, y1 = fr.xy(la1, lo1)
            out.append(f'<path d="M{_f(x0)} {_f(y0)}L{_f(x1)} {_f(y1)}"/>')
        out.append("</g>")
    used: list[str] = []
    for layer, (_, shape, fill, size) in LAYERS.items():
        pts = [p for p in layers.points if p.layer == layer]
        if not pts:
            continue
        used.append(layer)
        css = "marker-" + layer.replace("_", "-")
        out.append(f'<g class="layer {css}-layer">')
        for p in pts:
            x, y = fr.xy(p.lat, p.lon)
            body = (f'<g class="marker {css}" data-id={quoteattr(p.id)}><title>{escape(p.label)}</title>'
                    f'{_shape(shape, x, y, size, fill)}</g>')
            out.append(f'<a href={quoteattr(p.href)}>{body}</a>' if p.href else body)
        out.append("</g>")
    out.append(_scale_bar(fr))
    out.append(f'<g class="north"><path d="M{width - 30} {height - 20}l8 -26l8 26l-8 -6Z" fill="#222"/>'
               f'<text x="{width - 26}" y="{height - 50}" font-size="12">N</text></g>')
    out.append(_legend(fr, used, bool(layers.cells)))
    out.append("</svg>")
    return "\n".join(out)


def grid(points: Sequence[tuple[float, float]], box: tuple[float, float, float, float], nx: int, ny: int) -> list[Cell]:
    """Bin (lat, lon) points into an nx × ny grid over `box`; empty cells are left out."""
    lat0, lon0, lat1, lon1 = box
    dlat = (lat1 - lat0) / ny or 1e-9
    dlon = (lon1 - lon0) / nx or 1e-9
    counts: dict[tuple[int, int], int] = {}
    for lat, lon in points:
        i = min(ny - 1, max(0, int((lat - lat0) / dlat)))
        j = min(nx - 1, max(0, int((lon - lon0) / dlon)))
        counts[(i, j)] = counts.get((i, j), 0) + 1
    return [Cell(lat0 + i * dlat, lon0 + j * dlon, lat0 + (i + 1) * dlat, lon0 + (j + 1) * dlon, n)
            for (i, j), n in sorted(counts.items())]
