"""The customer's invoice PDF as a customer expects it: name and service address, the class in
words, the real payment references with their check digits and the store barcode (not a
'provisional' reference), and the consumption chart; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import zlib
from datetime import date

from test_payments_support import make_invoice
from test_registry_api import world  # noqa: F401 - the shared fixture

from cloud.payments.references import parse


def _pdf_text(pdf: bytes) -> str:
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            # decompressobj tolerates a stream the regex cut a byte short (binary data may end in \r)
            out.append(zlib.decompressobj().decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(m.group(1).decode("latin-1"))
    return "\n".join(out)


def test_invoice_pdf_names_the_customer_and_prints_valid_references(world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    c = world.client
    r = c.post("/api/v2/contracts", headers=world.admin1, json={
        "zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "units": 1, "start_date": "2026-01-01",
        "customer": {"name": "María Pérez Gómez", "pensioner": True},
        "service_point": {"address": "Calle Hidalgo 12, Centro"}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    with world.engine.begin() as conn:
        inv = make_invoice(conn, cid, "2026-02", "710.78", due=date(2026, 3, 20))
    pdf = c.get(f"/api/v2/invoices/{inv}/pdf", headers=world.billing1)
    assert pdf.status_code == 200, pdf.text
    text = _pdf_text(pdf.content)
    refs = c.get(f"/api/v2/invoices/{inv}/payment-references", headers=world.billing1).json()
    for s in ("María Pérez Gómez", "Calle Hidalgo 12, Centro", "Doméstica medio", refs["bankReference"],
              refs["contractReference"], refs["storeBarcode"], "Historial de consumo"):
        assert s in text, s
    assert "DOM_MEDIO" not in text and "provisional" not in text.lower()
    for ref in (refs["bankReference"], refs["contractReference"], refs["storeBarcode"]):
        assert parse(ref).contract_id == cid  # each printed reference passes its own check digits
    assert text.count(" re f") + text.count(" re\nf") >= 30  # the Code 128 bars
    # A corrected invoice: the superseded one tells the customer to pay the current one instead.
    with world.engine.begin() as conn:
        make_invoice(conn, cid, "2026-02", "545.39", revision=1, corrects=inv, due=date(2026, 3, 20))
    old = _pdf_text(c.get(f"/api/v2/invoices/{inv}/pdf", headers=world.billing1).content)
    assert "SUSTITUIDA por" in old and refs["storeBarcode"] not in old
