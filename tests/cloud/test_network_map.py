"""The network map: the pure SVG renderer, and its layers read through the API on SQLite and
PostgreSQL (scope, open anomalies and work orders, density cells for large municipalities)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from cloud.ids import uuid7
from cloud.maps.layers import map_layers
from cloud.maps.svg import Area, Layers, Point, grid, render
from cloud.registry import replicated
from cloud.registry.seed import meter_serial, seed

SVG = "{http://www.w3.org/2000/svg}"


def _markers(doc: bytes | str, css: str) -> list[etree._Element]:
    root = etree.fromstring(doc.encode() if isinstance(doc, str) else doc)
    return [g for g in root.iter(f"{SVG}g") if css in (g.get("class") or "").split()]


def test_render_places_points_by_their_coordinates_and_escapes_labels() -> None:
    layers = Layers("Red <EXP-01>", areas=[Area("EXP-01-Z01", 20.58, -100.40, 20.60, -100.38, 3)], points=[
        Point("service_point", 20.60, -100.40, "norte-oeste", "nw"),
        Point("service_point", 20.58, -100.38, "sur-este", "se"),
        Point("anomaly", 20.59, -100.39, 'fuga <script>alert("x")</script>', "an1", href="/console/x?a=1&b=2"),
    ])
    doc = render(layers, 800, 600)
    root = etree.fromstring(doc.encode())  # well-formed XML whatever the labels hold
    assert "<script>" not in doc and "&lt;script&gt;" in doc
    circles = {g.get("data-id"): g.find(f"{SVG}circle") for g in _markers(doc, "marker-service-point")}
    nw, se = circles["nw"], circles["se"]
    assert float(nw.get("cx")) < float(se.get("cx"))  # west is left
    assert float(nw.get("cy")) < float(se.get("cy"))  # north is up
    (alert,) = _markers(doc, "marker-anomaly")
    assert alert.get("data-id") == "an1" and alert.getparent().get("href") == "/console/x?a=1&b=2"
    assert root.find(f"{SVG}title").text == "Red <EXP-01>"
    assert "Anomalía abierta" in doc and "Punto de servicio" in doc and "Válvula" not in doc  # legend: layers drawn
    assert re.search(r">\d+(\.\d+)? (k?m)<", doc)  # a scale bar


def test_render_of_nothing_is_still_a_map() -> None:
    doc = render(Layers("vacío"))
    assert etree.fromstring(doc.encode()).tag == f"{SVG}svg" and not _markers(doc, "marker")


@given(st.lists(st.tuples(st.floats(20.0, 21.0), st.floats(-101.0, -100.0)), max_size=200),
       st.integers(1, 20), st.integers(1, 20))
def test_grid_keeps_every_point_in_a_cell_that_contains_it(points, nx, ny) -> None:
    cells = grid(points, (20.0, -101.0, 21.0, -100.0), nx, ny)
    assert sum(c.count for c in cells) == len(points)
    assert all(c.count > 0 for c in cells)
    for lat, lon in points:
        assert any(c.lat0 - 1e-9 <= lat <= c.lat1 + 1e-9 and c.lon0 - 1e-9 <= lon <= c.lon1 + 1e-9 for c in cells)


@pytest.fixture
def mapped(cloud):
    seed(cloud.engine, "EXP-01", 2, 20)
    seed(cloud.engine, "EXP-02", 1, 4)
    cloud.staff1 = cloud.user("dispatcher", "EXP-01")
    cloud.staff2 = cloud.user("dispatcher", "EXP-02")
    cloud.central = cloud.user("admin", "*")
    return cloud


def _anomaly(engine, municipality: str, zone: str, serial: str) -> str:
    aid = uuid7()
    with engine.begin() as conn:
        replicated.insert_facts(conn, "anomalies", [{
            "id": aid, "municipality": municipality, "zone": zone, "kind": "leak", "severity": "high",
            "meter_serial": serial, "detected_at": 1_780_000_000_000, "source": "edge", "details": {}}], None)
    return aid


def test_map_shows_an_open_anomaly_marker_until_its_work_order_is_done(mapped) -> None:
    c = mapped.client
    aid = _anomaly(mapped.engine, "EXP-01", "EXP-01-Z02", meter_serial("EXP-01-Z02", 3))
    r = c.get("/api/v2/network-map.svg", headers=mapped.staff1)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert [g.get("data-id") for g in _markers(r.content, "marker-anomaly")] == [aid]
    assert len(_markers(r.content, "marker-service-point")) == 20
    assert len(_markers(r.content, "marker-valve")) == 16 and len(_markers(r.content, "marker-district-meter")) == 2
    body = c.get("/api/v2/network-map", headers=mapped.staff1).json()
    assert {a["code"] for a in body["areas"]} == {"EXP-01-Z01", "EXP-01-Z02"}
    (point,) = [p for p in body["points"] if p["layer"] == "anomaly"]
    meter = c.get(f"/api/v2/meters/{meter_serial('EXP-01-Z02', 3)}", headers=mapped.staff1).json()
    assert point["id"] == aid
    # another municipality's staff do not see it, nor may they ask for EXP-01's map
    other = c.get("/api/v2/network-map.svg", headers=mapped.staff2)
    assert other.status_code == 200 and not _markers(other.content, "marker-anomaly")
    assert len(_markers(other.content, "marker-service-point")) == 4
    assert c.get("/api/v2/network-map.svg?municipality=EXP-01", headers=mapped.staff2).status_code == 403
    # a work order for it: an open-order marker while it runs, and both markers gone once completed
    r = c.post("/api/v2/work-orders/dispatch", headers=mapped.staff1)  # opens an order for the new anomaly
    assert r.status_code == 200, r.text
    (wo,) = c.get(f"/api/v2/work-orders?meter_serial={meter['serial']}", headers=mapped.staff1).json()["items"]
    assert wo["anomaly_id"] == aid
    svg = c.get("/api/v2/network-map.svg?zone=EXP-01-Z02", headers=mapped.staff1).content
    assert [g.get("data-id") for g in _markers(svg, "marker-work-order")] == [wo["id"]]
    assert len(_markers(svg, "marker-service-point")) == 10  # one zone only
    with mapped.engine.begin() as conn:
        replicated.write_rows(conn, "work_orders", [{"id": wo["id"], "status": "cancelled"}], None)
    svg = c.get("/api/v2/network-map.svg", headers=mapped.staff1).content
    assert not _markers(svg, "marker-anomaly") and not _markers(svg, "marker-work-order")
    assert len(_markers(svg, "marker-service-point")) == 20


def test_a_large_municipality_is_drawn_as_density_cells_holding_every_point(mapped) -> None:
    from cloud.auth import Principal

    central = Principal("user", "u", "admin", "*")
    with mapped.engine.connect() as conn:
        dense = map_layers(conn, central, municipality=None, max_points=10)
        sparse = map_layers(conn, central, municipality=None)
    assert not [p for p in dense.points if p.layer.startswith("service_point")]
    assert sum(c.count for c in dense.cells) == 24 == len([p for p in sparse.points if p.layer == "service_point"])
    doc = render(dense)
    assert len(etree.fromstring(doc.encode()).findall(f".//{SVG}rect[@class='cell']")) == len(dense.cells)
    r = mapped.client.get("/api/v2/network-map.svg?width=99999", headers=mapped.central)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "width"
