"""Cloud test helpers: an app on the `db_url` database and credentials made through the real code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloud.app import create_app
from cloud.auth import create_node, create_user
from cloud.settings import CloudSettings


class Cloud:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.engine = app.state.engine
        self.client = TestClient(app, raise_server_exceptions=False)

    def user(self, role: str, municipality: str = "EXP-01", zone: str | None = None) -> dict[str, str]:
        with self.engine.begin() as conn:
            cred = create_user(conn, name=f"{role} {municipality}", role=role, municipality=municipality, zone=zone)
        return {"Authorization": f"Bearer {cred['token']}"}

    def node(self, kind: str = "gateway", municipality: str = "EXP-01", zone: str = "EXP-01-Z01") -> tuple[dict[str, str], str]:
        with self.engine.begin() as conn:
            cred = create_node(conn, kind=kind, municipality=municipality, zone=zone)
        return {"Authorization": f"Bearer {cred['token']}"}, cred["site_id"]


@pytest.fixture
def cloud(db_url: str) -> Iterator[Cloud]:
    app = create_app(CloudSettings(db_url=db_url, log_json=False, log_level="warning"))
    c = Cloud(app)
    try:
        yield c
    finally:
        c.client.close()
        app.state.engine.dispose()


@pytest.fixture
def sqlite_cloud(tmp_path: Any) -> Iterator[Cloud]:
    """SQLite only, for tests about pure request handling."""
    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.db'}", log_json=False, log_level="warning"))
    c = Cloud(app)
    try:
        yield c
    finally:
        c.client.close()
        app.state.engine.dispose()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Every CFDI a cloud test issued (Ingreso, substitute, credit note, Pagos 2.0, global), sealed
    and stamped, must pass SAT's untouched XSD with catalogs and the seal check: checked after the
    test body, on the test's own database, before its fixtures are torn down."""
    outcome = yield
    url = getattr(item, "funcargs", {}).get("db_url")
    if url is None or outcome.excinfo is not None:
        return
    import sqlalchemy as sa
    from cfdi_helpers import independent_seal_ok

    from cloud.cfdi.validate import validator
    from cloud.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("cfdi_documents"):
                return
            # `rejected`: the PAC refused it (tests corrupt a seal on purpose to see that happen).
            rows = conn.execute(sa.text("SELECT id, kind, sealed_xml, stamped_xml FROM cfdi_documents "
                                        "WHERE fiscal_status <> 'rejected'")).all()
    finally:
        engine.dispose()
    from lxml import etree

    full = validator(full=True)
    for doc_id, kind, sealed, stamped in rows:
        for label, xml in (("sealed", sealed), ("stamped", stamped)):
            if xml is None:
                continue
            report = full.check(etree.fromstring(bytes(xml)))
            assert report.ok, f"{kind} CFDI {doc_id} ({label}) fails SAT's XSD: {report.errors[:3]}"
            assert independent_seal_ok(bytes(xml)), f"{kind} CFDI {doc_id} ({label}): seal does not verify"
