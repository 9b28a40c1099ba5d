"""Exports on SQLite and PostgreSQL: the rows of a CSV or XLSX export are the API list's rows
(same filters, same order, same scope); streaming pulls pages lazily; hostile cells are defused."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from cloud.exports.stream import Column, csv_chunks, path, rows_of, write_xlsx
from cloud.registry.seed import seed


@pytest.fixture
def world(cloud):
    seed(cloud.engine, "EXP-01", 2, 25)
    seed(cloud.engine, "EXP-02", 1, 4)
    cloud.staff1 = cloud.user("dispatcher", "EXP-01")
    cloud.billing1 = cloud.user("billing", "EXP-01")
    cloud.staff2 = cloud.user("dispatcher", "EXP-02")
    cloud.central = cloud.user("admin", "*")
    return cloud


def _api_all(client, url, headers, limit=7):
    items, after = [], None
    sep = "&" if "?" in url else "?"
    while True:
        r = client.get(f"{url}{sep}limit={limit}" + (f"&after={after}" if after else ""), headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        after = r.json()["next"]
        if after is None:
            return items


def _csv(resp) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    text = resp.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def _xlsx(resp) -> list[list[object]]:
    assert resp.status_code == 200, resp.text
    wb = load_workbook(io.BytesIO(resp.content), read_only=True)
    return [list(r) for ws in wb.worksheets for r in ws.iter_rows(values_only=True)]


def test_contract_export_rows_are_the_api_rows(world) -> None:
    c = world.client
    api = _api_all(c, "/api/v2/contracts?zone=EXP-01-Z02", world.staff1)
    rows = _csv(c.get("/api/v2/exports/contracts?zone=EXP-01-Z02", headers=world.staff1))
    assert rows[0][:4] == ["Contrato", "Administración", "Zona", "Estado"]
    body = rows[1:]
    assert [r[0] for r in body] == [x["id"] for x in api] and len(api) == 12
    for r, x in zip(body, api, strict=True):
        assert r[2] == x["zone"] and r[4] == x["use_class"] and r[8] == x["meter"]["serial"]
        assert float(r[9]) == x["service_point"]["lat"] and r[6] == x["customer"]["name"]
    xl = _xlsx(c.get("/api/v2/exports/contracts?zone=EXP-01-Z02&format=xlsx", headers=world.staff1))
    assert [r[0] for r in xl[1:]] == [x["id"] for x in api]
    assert [r[9] for r in xl[1:]] == pytest.approx([x["service_point"]["lat"] for x in api], abs=1e-9)  # numbers


def test_network_exports_match_their_api_lists(world) -> None:
    c = world.client
    for name, url in (("network-assets", "/api/v2/network-assets?kind=valve"),
                      ("service-connections", "/api/v2/service-connections?zone=EXP-01-Z01"),
                      ("districts", "/api/v2/districts")):
        api = _api_all(c, url, world.staff1)
        query = url.split("?", 1)[1] if "?" in url else ""
        rows = _csv(c.get(f"/api/v2/exports/{name}?{query}", headers=world.staff1))
        key = "code" if name == "districts" else "id"
        assert [r[0] for r in rows[1:]] == [x[key] for x in api] and api, name


def test_work_order_and_invoice_exports_match_the_api(world) -> None:
    c = world.client
    for k in range(3):
        r = c.post("/api/v2/work-orders", headers=world.staff1, json={
            "type": "inspect_anomaly", "zone": "EXP-01-Z01", "description": f"=HYPERLINK(\"http://x\") {k}"})
        assert r.status_code == 201, r.text
    api = _api_all(c, "/api/v2/work-orders", world.staff1, limit=2)
    rows = _csv(c.get("/api/v2/exports/work-orders", headers=world.staff1))
    assert [r[0] for r in rows[1:]] == [x["id"] for x in api] and len(api) == 3
    assert all(r[9].startswith("'=HYPERLINK") for r in rows[1:])  # a formula is text in the spreadsheet
    assert rows[1][10] == api[0]["createdAt"]
    # invoices: billing's list, billing's export (none issued here: just the header, and the role check)
    assert _csv(c.get("/api/v2/exports/invoices?period=2026-11", headers=world.billing1)) == [
        ["Factura", "Folio", "Contrato", "Administración", "Zona", "Periodo", "Emisión", "Vencimiento", "Consumo L",
         "Subtotal", "IVA", "Total", "Estado", "Sustituida por"]]
    assert c.get("/api/v2/exports/invoices", headers=world.staff1).status_code == 403


def test_exports_are_scoped_and_refuse_bad_input_naming_the_field(world) -> None:
    c = world.client
    mine = _csv(c.get("/api/v2/exports/contracts", headers=world.staff2))
    assert len(mine) == 5 and {r[1] for r in mine[1:]} == {"EXP-02"}
    assert c.get("/api/v2/exports/contracts?municipality=EXP-01", headers=world.staff2).status_code == 403
    both = _csv(c.get("/api/v2/exports/contracts", headers=world.central))
    assert {r[1] for r in both[1:]} == {"EXP-01", "EXP-02"} and len(both) == 30
    only = _csv(c.get("/api/v2/exports/contracts?municipality=EXP-02", headers=world.central))
    assert len(only) == 5
    r = c.get("/api/v2/exports/contracts?colour=red", headers=world.staff1)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "colour"
    r = c.get("/api/v2/exports/contracts?zone=" + "Z" * 500, headers=world.staff1)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "zone"
    assert c.get("/api/v2/exports/contracts?format=pdf", headers=world.staff1).status_code == 422
    assert c.get("/api/v2/exports/passwords", headers=world.staff1).status_code == 404
    assert c.get("/api/v2/exports/contracts").status_code == 401


def test_rows_are_fetched_a_page_at_a_time() -> None:
    calls: list[str | None] = []

    def page(after, limit):
        calls.append(after)
        n = 0 if after is None else int(after)
        items = [{"id": n + i, "text": "x" * 100} for i in range(limit)] if n < 10_000 else []
        return items, (str(n + limit) if items else None)

    chunks = csv_chunks(["id", "text"], rows_of(page, [Column("id", path("id")), Column("text", path("text"))],
                                                 page_size=100))
    first = next(chunks)
    assert len(calls) <= 8 and len(first) < 100_000  # the first chunk needed a few pages, not the whole list
    rest = b"".join(chunks)
    assert (first + rest).decode().count("\r\n") == 10_001 and len(calls) == 101


def test_xlsx_rolls_over_to_a_new_sheet_at_the_row_limit(tmp_path) -> None:
    import os

    name = write_xlsx(["n", "amount"], ([i, Decimal("1.50")] for i in range(25)), "lista", max_rows_per_sheet=10)
    try:
        wb = load_workbook(name, read_only=True)
        sheets = [[r for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets]
    finally:
        os.unlink(name)
    assert [len(s) for s in sheets] == [10, 10, 8] and all(s[0] == ("n", "amount") for s in sheets)
    assert [r[0] for s in sheets for r in s[1:]] == list(range(25)) and sheets[0][1][1] == 1.5
