"""Pure pieces of the billing hot path: hand-built JSON equals the plain form, references, ids."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from cloud.billing.bulk import uuid7_batch
from cloud.billing.inputs import BillableContract
from cloud.billing.pdf import render_invoice_pdf
from cloud.billing.runs import BillCache, line_json, lines_json, payment_reference, whole_m3
from cloud.tariffs import BillRequest, TariffBook, TariffError, compute_bill, default_book
from cloud.tariffs.rounding import billed_m3
from cloud.tariffs.store import parse_version


def test_hand_built_lines_json_is_the_plain_json():
    extra = parse_version({"format": "aquacis.tariffs/1", "version": "v-\"quoted\"", "validFrom": "2026-03-10",
                           "tariffs": [{"code": "X", "administration": "EXP-01", "useClass": "DOM_MEDIO",
                                        "service": "water", "kind": "linear", "fixedCharge": "1", "unitPrice": "2",
                                        "vatRate": "0"}]})
    book = TariffBook([*default_book().versions, extra])
    for period in ((date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 3, 1), date(2026, 3, 31))):
        bill = compute_bill(book, BillRequest("EXP-01", "DOM_MEDIO", D("12.7"), *period,
                                              frozenset({"water", "sewerage", "sanitation"}), 2))
        assert json.loads(lines_json(bill.lines)) == [line_json(ln) for ln in bill.lines]


@given(st.from_regex(r"EXP-[0-9]{2}-[0-9]{7}", fullmatch=True), st.integers(2000, 2099), st.integers(1, 12))
def test_payment_reference_check_digits(contract, year, month):
    ref = payment_reference(contract, f"{year}-{month:02d}")
    assert ref.isdigit() and len(ref) == 17  # the payments module's bank reference (docs/payments.md)
    assert int(ref) % 97 == 1  # ISO 7064 mod 97-10: a mistyped digit is caught


@given(st.integers(0, 10**9), st.integers(1, 12))
def test_integer_m3_rounding_is_the_tariff_rule(litres, units):
    # The bill cache keys on this integer form; it must round exactly like the engine.
    assert whole_m3(litres, units) == billed_m3(D(litres) / 1000 / units)
    assert whole_m3(litres, 1) == billed_m3(D(litres) / 1000)


@given(st.sampled_from(["DOM_MEDIO", "COMERCIAL", "PUB_HIDRANTE", "GANADERO"]),
       st.sampled_from([frozenset({"water"}), frozenset({"water", "sewerage", "sanitation"}), frozenset({"sewerage"})]),
       st.integers(0, 400_000), st.integers(0, 5), st.booleans())
def test_bill_cache_gives_the_engines_bill(use_class, services, litres, units, sqlite):
    book = default_book()
    cache = BillCache(book, limit=3)  # tiny: exercises the clearing too
    ct = BillableContract("EXP-02-0000001", "EXP-02", None, use_class, services, units)
    period = (date(2026, 2, 1), date(2026, 2, 28))
    try:
        bill = compute_bill(book, BillRequest("EXP-02", use_class, D(litres) / 1000, *period, services, units))
    except TariffError as e:
        for _ in range(2):  # computed, then from the cache
            try:
                cache.columns(ct, litres, *period, sqlite)
                raise AssertionError("expected TariffError")
            except TariffError as got:
                assert str(got) == str(e)
        return
    money = [bill.subtotal, bill.vat, bill.total]
    want = (bill.billed_m3, json.dumps(list(bill.tariff_versions)), [line_json(ln) for ln in bill.lines],
            *([str(m) for m in money] if sqlite else money))
    for _ in range(2):
        got = cache.columns(ct, litres, *period, sqlite)
        assert (got[0], got[1], json.loads(got[2]), *got[3:]) == want


def test_uuid7_batch():
    ids = uuid7_batch(1000)
    assert len(set(ids)) == 1000
    for i in ids[:50]:
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122 and re.fullmatch(r"[0-9a-f-]{36}", i)


def test_pdf_renders_estimated_and_correction_without_history():
    inv = {"number": "EXP-02-202602-EXP-02-0000001-C1", "kind": "correction", "municipality": "EXP-02",
           "contract_id": "EXP-02-0000001", "zone": "EXP-02-Z01", "use_class": "DOM_ALTO", "units": 3,
           "period": "2026-02", "period_start": "2026-02-01", "period_end": "2026-02-28", "issue_date": "2026-03-01",
           "due_date": "2026-03-21", "corrects": "abc", "basis": {"method": "estimate", "meter": "M1"},
           "billed_m3": 0, "estimated": True, "tariff_versions": ["cea-queretaro-2026-02"],
           "lines": [{"concept": "water", "description": "Agua potable — ñandú €", "amount": "278.39",
                      "vat_rate": "0", "vat": "0.00"}],
           "subtotal": "278.39", "vat": "0.00", "total": "278.39", "payment_reference": "00000000000120260299"}
    pdf = render_invoice_pdf(inv, [], "Corregidora")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 1000
