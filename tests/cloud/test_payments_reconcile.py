"""Bank statement import on SQLite and PostgreSQL: matching, reporting, never twice."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from test_payments_support import count, make_contract, make_invoice

from cloud.payments.references import bank_reference, contract_reference, store_reference
from cloud.payments.statements import fixed_file, fixed_record
from cloud.payments.tables import payments, statement_lines

HDR = "account,movement_id,value_date,amount,reference,description\n"


def _setup(cloud):  # type: ignore[no-untyped-def]
    with cloud.engine.begin() as conn:
        a, b, c = (make_contract(conn, n) for n in (1, 2, 3))
        x = make_contract(conn, 1, municipality="EXP-02")
        inv = {
            "a1": make_invoice(conn, a, "2026-01", "300.00", due=date(2026, 2, 20)),
            "a2": make_invoice(conn, a, "2026-02", "200.00", due=date(2026, 3, 20)),
            "b1": make_invoice(conn, b, "2026-02", "150.00", due=date(2026, 3, 20)),
            "c1": make_invoice(conn, c, "2026-02", "99.90", due=date(2026, 3, 20)),
            "x1": make_invoice(conn, x, "2026-02", "10.00", due=date(2026, 3, 20)),
        }
    return (a, b, c, x), inv


def _import(cloud, h, text, fmt="csv"):  # type: ignore[no-untyped-def]
    return cloud.client.post("/api/v2/bank-statements", params={"format": fmt, "filename": "edo.csv"},
                             content=text.encode(), headers=h)


def _balance(cloud, h, cid):  # type: ignore[no-untyped-def]
    return cloud.client.get(f"/api/v2/contracts/{cid}/debt", params={"asOf": "2026-03-25"}, headers=h).json()["balance"]


def test_csv_import_matches_reports_and_never_applies_twice(cloud) -> None:
    (a, b, c, x), inv = _setup(cloud)
    h = cloud.user("collections")
    bad_check = bank_reference(b, "2026-02")[:-1] + str((int(bank_reference(b, "2026-02")[-1]) + 1) % 10)
    store_c = store_reference(c, "2026-02", 0, date(2026, 3, 20), 9990)
    text = HDR + "\n".join([
        f"0123,M001,2026-03-02,250.00,{bank_reference(a, '2026-02')},SPEI",           # named invoice a2 then a1
        f"0123,M002,2026-03-02,150.00,{contract_reference(b)},deposito",              # contract reference
        f"0123,M003,2026-03-03,99.90,{store_c},OXXO",                                 # store barcode, exact
        f"0123,M004,2026-03-03,50.00,{store_c},OXXO",                                 # barcode amount differs
        f"0123,M005,2026-03-03,10.00,{bad_check},typo",                               # bad check digits
        f"0123,M006,2026-03-03,10.00,{bank_reference('EXP-01-0000099', '2026-02')},", # unknown contract
        f"0123,M007,2026-03-03,10.00,,pago ref {bank_reference(b, '2026-02')} gracias",  # found in description
        f"0123,M008,2026-03-03,10.00,,{contract_reference(a)} y {contract_reference(b)}",  # two contracts
        f"0123,M009,2026-03-03,10.00,{bank_reference(x, '2026-02')},otra explotacion",  # EXP-02 contract
        f"0123,M010,2026-03-03,1.234,{contract_reference(a)},",                       # bad amount
        f"0123,M011,2026-03-03,-20.00,{contract_reference(a)},comision",              # a debit
        f"0123,M001,2026-03-02,250.00,{bank_reference(a, '2026-02')},SPEI",           # same movement again
        f"0123,M012,2026-03-04,10.00,{bank_reference(b, '2026-05')},",                # period never billed
    ]) + "\n"
    r = _import(cloud, h, text)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert (rep["lines"], rep["applied"], rep["duplicates"], rep["unmatched"], rep["ambiguous"], rep["rejected"]) == \
        (13, 4, 1, 3, 3, 2)
    assert rep["amountApplied"] == "509.90"
    by_line = {p["line"]: p for p in rep["problems"]}
    assert by_line[5]["status"] == "ambiguous" and "barcode" in by_line[5]["reason"]
    assert by_line[6]["status"] == "unmatched" and "check digits" in by_line[6]["reason"]
    assert by_line[7]["status"] == "unmatched" and "no contract" in by_line[7]["reason"]
    assert by_line[9]["status"] == "ambiguous" and sorted(by_line[9]["candidates"]) == [a, b]
    assert by_line[10]["status"] == "unmatched" and "EXP-02" in by_line[10]["reason"]
    assert by_line[11]["status"] == "rejected" and by_line[12]["status"] == "rejected"
    assert by_line[13]["status"] == "duplicate"
    assert by_line[14]["status"] == "ambiguous" and "no invoice for 2026-05" in by_line[14]["reason"]
    assert (_balance(cloud, h, a), _balance(cloud, h, b), _balance(cloud, h, c)) == ("250.00", "-10.00", "0.00")
    # The same file again (and a second file repeating a movement): nothing is applied twice.
    again = _import(cloud, h, text).json()
    assert again["applied"] == 0 and again["duplicates"] == 5
    repeat = _import(cloud, h, HDR + f"0123,M002,2026-03-02,150.00,{contract_reference(b)},deposito\n").json()
    assert repeat["duplicates"] == 1 and repeat["applied"] == 0
    assert (_balance(cloud, h, a), _balance(cloud, h, b)) == ("250.00", "-10.00")
    with cloud.engine.connect() as conn:
        assert count(conn, payments) == 4
        assert count(conn, statement_lines) == 13 + 13 + 1  # every line kept with its outcome
    # the report can be read back, filtered
    rid = rep["importId"]
    amb = cloud.client.get(f"/api/v2/bank-statements/{rid}", params={"status": "ambiguous"}, headers=h).json()
    assert [i["line"] for i in amb["items"]] == [5, 9, 14]
    assert cloud.client.get(f"/api/v2/bank-statements/{rid}", headers=cloud.user("collections", "EXP-02")
                            ).status_code == 404


def test_identical_lines_without_movement_id(cloud) -> None:
    (a, b, c, x), inv = _setup(cloud)
    h = cloud.user("collections")
    line = f"0123,,2026-03-02,100.00,{contract_reference(a)},ventanilla\n"
    rep = _import(cloud, h, HDR + line + line).json()
    assert rep["applied"] == 2  # two equal deposits in one file are two payments
    assert _import(cloud, h, HDR + line + line).json()["duplicates"] == 2
    assert _import(cloud, h, HDR + line + line + line).json()["applied"] == 1  # a third one is new
    assert _balance(cloud, h, a) == "200.00"


def test_fixed_width_import_and_truncated_file(cloud) -> None:
    (a, b, c, x), inv = _setup(cloud)
    h = cloud.user("collections")
    recs = [fixed_record("012180001234567890", date(2026, 3, 2), str(i), cents, ref, "DEPOSITO")
            for i, (cents, ref) in enumerate([(30000, bank_reference(a, "2026-01")),
                                              (15000, bank_reference(b, "2026-02")),
                                              (500, "12345")], start=1)]
    text = fixed_file("012180001234567890", date(2026, 3, 2), recs)
    truncated = "\n".join(text.splitlines()[:-2]) + "\n"
    r = _import(cloud, h, truncated, "fixed")
    assert r.status_code == 422 and "trailer" in r.json()["reason"]
    altered = text.replace(recs[0], recs[0][:37] + "000000000099999" + recs[0][52:])
    r = _import(cloud, h, altered, "fixed")
    assert r.status_code == 422 and "altered" in r.json()["reason"]
    with cloud.engine.connect() as conn:
        assert count(conn, payments) == 0 and count(conn, statement_lines) == 0
    rep = _import(cloud, h, text, "fixed").json()
    assert (rep["applied"], rep["unmatched"]) == (2, 1)
    assert (_balance(cloud, h, a), _balance(cloud, h, b)) == ("200.00", "0.00")
    assert _import(cloud, h, text, "fixed").json()["duplicates"] == 3 - 1  # the unmatched line stays unmatched


def test_bad_files_are_refused_whole(cloud) -> None:
    h = cloud.user("collections")
    assert _import(cloud, h, "", "csv").status_code == 422
    assert _import(cloud, h, "foo,bar\n1,2\n", "csv").status_code == 422
    assert _import(cloud, h, "HELLO\n", "fixed").status_code == 422
    assert _import(cloud, h, HDR, "xml").status_code == 422
    r = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, content=b"\xff\xfe\x00", headers=h)
    assert r.status_code == 422 and "UTF-8" in r.json()["reason"]


def test_reference_printed_by_the_billing_run_matches(cloud) -> None:
    """Invoices carry the billing run's own printed reference; a deposit quoting it is applied."""
    with cloud.engine.begin() as conn:
        a = make_contract(conn, 1)
        inv = make_invoice(conn, a, "2026-02", "278.39", due=date(2026, 3, 20),
                           printed_reference="00000000000120260299")
    h = cloud.user("collections")
    rep = _import(cloud, h, HDR + "0123,M1,2026-03-02,278.39,00000000000120260299,\n").json()
    assert rep["applied"] == 1, rep
    p = cloud.client.post("/api/v2/payments", json={"reference": "00000000000120260299", "amount": "1.00",
                                                    "channel": "counter", "channelTxnId": "z",
                                                    "receivedAt": "2026-03-03T10:00:00-06:00"}, headers=h)
    assert p.status_code == 201 and p.json()["allocations"][0]["kind"] == "credit"
    assert _balance(cloud, h, a) == "-1.00"
    del inv


def test_hostile_lines_are_rejected_and_kept_and_uploads_are_bounded(cloud) -> None:
    (a, b, c, x), inv = _setup(cloud)
    h = cloud.user("collections")
    text = (HDR + f"0123,M1,2026-03-02,100.00,{contract_reference(a)}," + "X" * 5000 + "\n"
            + '0123,M2,2026-03-02,"100.00,123,unclosed\n'
            + f"0123,M3,2026-03-02,100.00,{contract_reference(a)},ok\n")
    rep = _import(cloud, h, text).json()
    assert (rep["lines"], rep["applied"], rep["rejected"]) == (3, 1, 2)
    reasons = {p["line"]: p["reason"] for p in rep["problems"]}
    assert reasons[2] == "line longer than 1000 characters" and reasons[3].startswith("malformed CSV")
    with cloud.engine.connect() as conn:
        kept = dict(conn.execute(sa.select(statement_lines.c.line_no, statement_lines.c.raw)).all())
    assert len(kept[2]) == 201 and kept[2].endswith("…")  # kept for staff, shortened
    # a chunked upload (no Content-Length) over max_body_bytes: 413, nothing applied
    cloud.app.state.settings = cloud.app.state.settings.model_copy(update={"max_body_bytes": 1000})
    r = cloud.client.post("/api/v2/bank-statements", params={"format": "csv"}, headers=h,
                          content=iter([HDR.encode()] + [b"0123,M9,2026-03-02,1.00,,x\n"] * 100))
    assert r.status_code == 413, r.text
    with cloud.engine.connect() as conn:
        assert count(conn, payments) == 1
