"""`aquacis cloud export --anonymise`: a non-production copy without the people in it
(docs/privacy.md, "Anonymised copies")."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from stdnum.mx import rfc as stdnum_rfc
from test_privacy import A_DATA, A_PLACE, B_DATA, B_PLACE, PHOTO, A, _light
from typer.testing import CliRunner

from cloud.cli import app as cli_app
from cloud.db import import_table_modules, make_engine, metadata
from cloud.notifications.outbox import enqueue
from cloud.privacy.copy import KINDS, RULES
from cloud.privacy.pseudonyms import Pseudonymiser
from sync.schema import TABLES as SYNCED


def test_every_personal_column_has_a_rule_and_every_rule_a_column() -> None:
    import_table_modules()
    for table in metadata.sorted_tables:
        for col in table.c:
            if col.info.get("personal"):
                assert col.name in RULES.get(table.name, {}), f"{table.name}.{col.name}"
    for name, spec in SYNCED.items():
        for field, fs in spec.fields.items():
            if fs.visible_to is not None:
                assert field in RULES.get(name, {}), f"{name}.{field}"
    for name, cols in RULES.items():
        assert name in metadata.tables, name
        for col, kind in cols.items():
            assert col in metadata.tables[name].c, f"{name}.{col}"
            assert kind in KINDS


RFC_PERSON = st.from_regex(r"\A[A-Z]{4}[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[A-Z0-9]{3}\Z")
RFC_COMPANY = st.from_regex(r"\A[A-Z]{3}[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[A-Z0-9]{3}\Z")


@given(st.one_of(RFC_PERSON, RFC_COMPANY), st.text(min_size=1, max_size=60), st.binary(min_size=32, max_size=32))
def test_pseudonyms_are_consistent_and_keep_the_shape(rfc: str, text: str, key: bytes) -> None:
    p, again, other = Pseudonymiser(key), Pseudonymiser(key), Pseudonymiser(bytes(31) + b"\x01")
    out = p.rfc(rfc)
    assert out == again.rfc(rfc) and out is not None and len(out) == len(rfc)
    assert stdnum_rfc.is_valid(out), out  # pattern, date and check digit
    for kind in ("name", "email", "phone", "address"):
        # the same person written with other spacing or case is the same pseudonym
        assert getattr(p, kind)(text) == getattr(again, kind)(f" {text} ") == getattr(p, kind)(text.casefold())
    assert p.email(text).endswith("@ejemplo.invalid") and len(p.phone(text)) == 10  # type: ignore[union-attr,arg-type]
    if key != bytes(31) + b"\x01":
        assert (p.email(text), p.rfc(rfc)) != (other.email(text), other.rfc(rfc))
    assert p.rfc("XAXX010101000") == "XAXX010101000"


def test_an_anonymised_copy_keeps_no_planted_value_and_maps_each_one_consistently(cloud, db_url: str,
                                                                                 tmp_path: Path) -> None:
    ids = _light(cloud)
    with cloud.engine.begin() as conn:
        enqueue(conn, "payment_received", A_DATA["email"], {
            "name": A_DATA["name"], "amount": "10.00", "paid_at": "01/12/2026 10:00", "contract": A,
            "channel": "counter", "balance": "0.00"}, dedup_key="a-notice", customer_id=ids[A], municipality="EXP-01")
    target = tmp_path / "copy.db"
    r = CliRunner().invoke(cli_app, ["export", "--db", db_url, "--to", f"sqlite:///{target}", "--anonymise"])
    assert r.exit_code == 0, r.output
    engine = make_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as conn:
            t = metadata.tables
            custs = {row.id: row for row in conn.execute(sa.select(t["customers"]))}
            note = conn.execute(sa.select(t["notifications"])).one()
            sp = conn.execute(sa.select(t["service_points"]).where(t["service_points"].c.id == ids[A + ":sp"])).one()
            n_contracts = conn.execute(sa.select(sa.func.count()).select_from(t["contracts"])).scalar()
            reading = conn.execute(sa.select(t["readings"]).where(t["readings"].c.id == "rd-photo-a")).one()
    finally:
        engine.dispose()
    a = custs[ids[A]]
    assert n_contracts == 2 and len(custs) == 2  # the whole database, not a sample
    assert a.email.endswith("@ejemplo.invalid") and note.recipient == a.email  # one person, one pseudonym
    assert note.customer_id == ids[A] and note.body == "(texto anonimizado)"
    assert stdnum_rfc.is_valid(a.tax_id) and a.tax_id != A_DATA["tax_id"]
    assert a.name != A_DATA["name"] and len(a.phone) == 10
    assert sp.address != A_PLACE["address"] and sp.lat == round(A_PLACE["lat"], 2)
    assert reading.photo_ref is None and reading.value_l == 108_000  # the metering data is kept
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("copy.db*"))
    for value in [*A_DATA.values(), *B_DATA.values(), A_PLACE["address"], A_PLACE["access_notes"],
                  B_PLACE["address"], PHOTO, "Berenice"]:
        if value in ("612", "76100"):
            continue  # régimen and fiscal zip are no identity on their own
        assert value.encode() not in blob, value
    # A second export into the same file is refused: a copy is made into an empty database.
    r = CliRunner().invoke(cli_app, ["export", "--db", db_url, "--to", f"sqlite:///{target}", "--anonymise"])
    assert r.exit_code == 2 and "empty" in r.output
