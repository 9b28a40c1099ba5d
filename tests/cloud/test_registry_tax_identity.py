"""Customers' tax data checked at registration the way SAT checks it (pattern, date and check
digit of the RFC with python-stdnum; régimen and UsoCFDI from SAT's catalogs and against each
other; the generic RFC only for público en general). Reported: month 13, a final 'Z',
XAXX010101000 on a named customer, régimen 999 and régimen 601 on a 13-character RFC were all
accepted and their invoices then silently got no CFDI."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum.mx import rfc as mx_rfc
from test_registry_api import world  # noqa: F401 - the shared fixture

from cloud.cfdi.rules import _ANY, USO_REGIMEN, tax_identity_errors
from cloud.cfdi.validate import validator

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _rfc(prefix: str, yymmdd: str, homoclave: str) -> str:
    body = prefix + yymmdd + homoclave
    return body + mx_rfc.calc_check_digit(body)


rfc_parts = st.tuples(
    st.sampled_from([3, 4]).flatmap(lambda n: st.text(LETTERS, min_size=n, max_size=n)),
    st.dates().map(lambda d: d.strftime("%y%m%d")),
    st.tuples(st.sampled_from("123456789ABCDEFGHIJKLMNOPQRSTUV"), st.sampled_from("123456789" + LETTERS)).map("".join),
)


@given(rfc_parts)
def test_a_well_formed_rfc_with_its_check_digit_passes_and_any_other_digit_fails(parts) -> None:  # type: ignore[no-untyped-def]
    prefix, date, homo = parts
    rfc = _rfc(prefix, date, homo)
    regime = "601" if len(rfc) == 12 else "612"
    errors = tax_identity_errors(rfc, regime, None, "76000")
    assume(len(prefix) == 3 or prefix not in mx_rfc._name_blacklist)  # SAT replaces those words in names
    assert errors == [], (rfc, errors)
    for wrong in "0123456789A":
        if wrong != rfc[-1]:
            bad = rfc[:-1] + wrong
            assert any(f == "tax_id" for f, _ in tax_identity_errors(bad, regime, None, "76000")), bad


@pytest.mark.parametrize(("rfc", "regime", "use", "field"), [
    ("GODE561331GR8", "612", None, "tax_id"),  # month 13
    ("GODE561231GRZ", "612", None, "tax_id"),  # a final 'Z' is no check digit
    ("XAXX010101000", "616", None, "tax_id"),  # generic RFC on a named customer
    ("GODE561231GR8", "999", None, "tax_regime"),  # not in c_RegimenFiscal
    ("GODE561231GR8", "601", None, "tax_regime"),  # 601 is for personas morales; 13 chars is física
    ("XIA190128J61", "612", None, "tax_regime"),  # 612 is for personas físicas; 12 chars is moral
    ("XIA190128J61", "601", "D01", "cfdi_use"),  # deducción personal on a company
    ("GODE561231GR8", "612", "Z99", "cfdi_use"),
    ("GODE561231GR8", "605", "G03", "cfdi_use"),  # sueldos y salarios cannot use G03
    ("GODE561231GR8", None, None, "tax_regime"),
    (None, "612", None, "tax_regime"),  # régimen without RFC
])
def test_reported_and_related_refusals(rfc, regime, use, field) -> None:  # type: ignore[no-untyped-def]
    errors = tax_identity_errors(rfc, regime, use, "76000")
    assert field in [f for f, _ in errors], errors


def test_good_identities() -> None:
    assert tax_identity_errors("GODE561231GR8", "612", "D01", "76000") == []
    assert tax_identity_errors("XIA190128J61", "601", "G03", "76120") == []
    assert tax_identity_errors(None, "616", "S01", "76000") == []
    assert tax_identity_errors(None, None, None, None) == []


def test_our_regime_and_use_lists_are_sats_catalogs() -> None:
    cats = validator().catalogs
    regimes = next(v for k, v in cats.items() if "RegimenFiscal" in k)
    uses = next(v for k, v in cats.items() if "UsoCFDI" in k)
    assert _ANY <= set(regimes) and set(USO_REGIMEN) <= set(uses)


def _contract(world, customer: dict, n: int):  # type: ignore[no-untyped-def]  # noqa: F811
    return world.client.post("/api/v2/contracts", headers=world.admin1, json={
        "zone": "EXP-01-Z01", "use_class": "COMERCIAL", "units": 1, "start_date": "2026-01-01",
        "customer": {"name": f"Cliente {n}", "fiscal_zip": "76000", **customer},
        "service_point": {"address": f"Calle {n}"},
    })


def test_registration_refuses_what_sat_would_refuse_naming_the_field(world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cases = [({"tax_id": "GODE561331GR8", "tax_regime": "612"}, "tax_id"),
             ({"tax_id": "GODE561231GRZ", "tax_regime": "612"}, "tax_id"),
             ({"tax_id": "XAXX010101000", "tax_regime": "616"}, "tax_id"),
             ({"tax_id": "GODE561231GR8", "tax_regime": "999"}, "tax_regime"),
             ({"tax_id": "GODE561231GR8", "tax_regime": "601"}, "tax_regime"),
             ({"tax_id": "GODE561231GR8", "tax_regime": "612", "cfdi_use": "CN01"}, "cfdi_use")]
    for i, (customer, field) in enumerate(cases):
        r = _contract(world, customer, i)
        assert r.status_code == 422, (customer, r.text)
        assert field in r.json()["reason"], r.text
    ok = _contract(world, {"tax_id": "GODE561231GR8", "tax_regime": "612", "cfdi_use": "D01"}, 99)
    assert ok.status_code == 201, ok.text
    assert ok.json()["customer"]["cfdi_use"] == "D01"
