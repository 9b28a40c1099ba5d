"""The cloud's operations gauges and health probes, on SQLite and PostgreSQL (db_url): each gauge
follows the database as the real services change it (CFDI stamping with the PAC down and up,
the notification dispatcher giving up, a node's pull, a billing run's chunks, readings awaiting
VEE); readiness turns 503 when the schema is behind the code."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cfdi_helpers import CUSTOMER_TAX, invoice, line
from prometheus_client import CollectorRegistry, generate_latest

from cloud.billing.runs import RunSpec, claim_chunk, create_run
from cloud.cfdi.model import LineKind
from cloud.cfdi.tables import cfdi_documents
from cloud.cfdi.wiring import service_from_settings
from cloud.metering.service import validate_pending
from cloud.notifications.outbox import dispatch_due, enqueue
from cloud.operations_metrics import OperationsCollector
from cloud.sync.tables import readings
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` with exactly these labels, None when absent."""
    for line_ in text.splitlines():
        m = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line_)
        if m:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if got == labels:
                return float(m.group(2))
    return None


class ThreeContracts:
    """The contract keys a run covers: a fixed list instead of the registry (the gauges read
    the run's own rows, not the contracts)."""

    def keys(self, conn, municipalities, zone):  # type: ignore[no-untyped-def]
        return [("EXP-01", "C-1"), ("EXP-01", "C-2"), ("EXP-01", "C-3")]


def test_operations_gauges_follow_the_database(cloud) -> None:  # type: ignore[no-untyped-def]
    svc = service_from_settings(cloud.engine)
    scrape = lambda: cloud.client.get("/metrics").text  # noqa: E731
    assert sample(scrape(), "aquacis_cloud_database_up") == 1.0

    # CFDIs: issued (waiting for the PAC), PAC down (retrying), PAC back (stamped: no longer pending)
    inv = invoice(svc.issuer, CUSTOMER_TAX, (line(LineKind.WATER, "10", "11.00"),), folio="M-1")
    svc.issue_invoice(inv, "EXP-01")
    text = scrape()
    assert sample(text, "aquacis_cfdi_pac_pending", municipality="EXP-01") == 1.0
    assert sample(text, "aquacis_cfdi_pac_retrying", municipality="EXP-01") == 0.0
    assert (sample(text, "aquacis_cfdi_pac_pending_oldest_created_timestamp_seconds", municipality="EXP-01") or 0) > 0
    svc.pac.down = True
    svc.stamp_due()
    assert sample(scrape(), "aquacis_cfdi_pac_retrying", municipality="EXP-01") == 1.0
    svc.pac.down = False
    with cloud.engine.begin() as conn:  # due now rather than after the backoff
        conn.execute(cfdi_documents.update().values(next_attempt_at=datetime.now(UTC) - timedelta(hours=1)))
    svc.stamp_due()
    assert sample(scrape(), "aquacis_cfdi_pac_pending", municipality="EXP-01") is None

    # notifications: one the dispatcher gives up on (no such channel), one long overdue
    now = datetime.now(UTC)
    with cloud.engine.begin() as conn:
        enqueue(conn, "payment_received", "a@example.mx", {}, dedup_key="m-1", channel="pigeon",
                municipality="EXP-01")
        enqueue(conn, "payment_received", "b@example.mx", {}, dedup_key="m-2", channel="email",
                municipality="EXP-01", now=now + timedelta(hours=1))
    assert dispatch_due(cloud.engine, {}, max_attempts=1)["failed"] == 1
    text = scrape()
    assert sample(text, "aquacis_notifications_failed", municipality="EXP-01", channel="pigeon") == 1.0
    assert sample(text, "aquacis_notifications_pending", municipality="EXP-01", channel="email") == 1.0
    assert sample(text, "aquacis_notifications_overdue", municipality="EXP-01", channel="email") == 0.0
    registry = CollectorRegistry()
    registry.register(OperationsCollector(cloud.engine, clock=lambda: (now + timedelta(hours=2)).timestamp()))
    later = generate_latest(registry).decode()
    assert sample(later, "aquacis_notifications_overdue", municipality="EXP-01", channel="email") == 1.0

    # billing run progress: three contracts in chunks of two, one chunk claimed by a worker
    with cloud.engine.begin() as conn:
        run_id = create_run(conn, RunSpec(("EXP-01",), "2026-10", chunk_size=2), contracts=ThreeContracts())
    assert claim_chunk(cloud.engine, "worker-1", run_id) is not None
    text = scrape()
    key = {"run_id": run_id, "cycle": "2026-10"}
    assert sample(text, "aquacis_billing_run_contracts", **key) == 3.0
    assert sample(text, "aquacis_billing_run_contracts_processed", **key) == 0.0
    assert sample(text, "aquacis_billing_run_chunks", **key, status="claimed") == 1.0
    assert sample(text, "aquacis_billing_run_chunks", **key, status="pending") == 1.0
    assert (sample(text, "aquacis_billing_runs", phase="running") or 0) + (
        sample(text, "aquacis_billing_runs", phase="pending") or 0) == 1.0


def test_node_last_sync_and_lag(cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw, site = cloud.node()
    labels = {"site_id": site, "kind": "gateway", "municipality": "EXP-01", "zone": "EXP-01-Z01"}
    text = cloud.client.get("/metrics").text
    assert sample(text, "aquacis_cloud_node_last_sync_timestamp_seconds", **labels) == 0.0
    assert (sample(text, "aquacis_cloud_node_sync_lag_seconds", **labels) or -1) >= 0
    store = EdgeStore.open(tmp_path / "gw.db", site_id=site)
    try:
        SyncClient(store, HttpxTransport(cloud.client), gw["Authorization"].split()[1], peer="cloud").sync()
    finally:
        store.close()
    text = cloud.client.get("/metrics").text
    synced = sample(text, "aquacis_cloud_node_last_sync_timestamp_seconds", **labels)
    assert synced is not None and abs(synced - datetime.now(UTC).timestamp()) < 120
    assert (sample(text, "aquacis_cloud_node_sync_lag_seconds", **labels) or 999) < 120


def test_validation_backlog_counts_unvalidated_readings(cloud) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    registry.register(OperationsCollector(cloud.engine, backlog_ttl_s=0))
    with cloud.engine.begin() as conn:
        conn.execute(readings.insert(), [
            {"id": f"0190aaaa-0000-7000-8000-00000000000{i}", "municipality": "EXP-01", "zone": "EXP-01-Z01",
             "meter_serial": "NO-SUCH-METER", "taken_at": 1_780_000_000_000 + i, "value_l": 1000 + i}
            for i in range(3)])
    assert sample(generate_latest(registry).decode(), "aquacis_cloud_validation_backlog_readings") == 3.0
    with cloud.engine.begin() as conn:
        assert validate_pending(conn) == 3
    assert sample(generate_latest(registry).decode(), "aquacis_cloud_validation_backlog_readings") == 0.0


def test_health_live_and_ready(cloud) -> None:  # type: ignore[no-untyped-def]
    c = cloud.client
    assert c.get("/health/live").json() == {"live": True}
    r = c.get("/health/ready")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["schema"] == r.json()["schema_head"] == r.json()["schemaHead"]
    assert c.get("/health").json()["database"] == "ok"
    assert sample(c.get("/metrics").text, "aquacis_cloud_ready") == 1.0
    with cloud.engine.begin() as conn:  # a schema older than the code: not ready, the reason says so
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001_baseline'"))
    r = c.get("/health/ready")
    assert r.status_code == 503 and "aquacis cloud migrate" in r.json()["reason"]
    assert sample(c.get("/metrics").text, "aquacis_cloud_ready") == 0.0
    assert c.get("/health").status_code == 503
    assert c.get("/health/live").status_code == 200


def test_a_dead_database_is_a_503_and_a_zero_gauge(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from cloud.app import create_app
    from cloud.settings import CloudSettings

    app = create_app(CloudSettings(db_url=f"sqlite:///{tmp_path / 'c.db'}", log_level="warning"))
    client = TestClient(app)
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db").mkdir()  # the path is now a directory: SQLite cannot open it
    app.state.engine.dispose()
    r = client.get("/health/ready")
    assert r.status_code == 503 and r.json()["database"] == "unreachable"
    assert client.get("/health/live").status_code == 200
    assert sample(client.get("/metrics").text, "aquacis_cloud_database_up") == 0.0


#: tables a scrape may read whole: one row per field node, per billing run, per municipality
SMALL_TABLES = {"nodes", "sync_sites", "billing_runs", "cfdi_blocked_invoices", "cfdi_payment_waits"}


def test_scrape_queries_use_indexes_on_postgresql(pg_url: str) -> None:
    """Every query a scrape runs, EXPLAINed on PostgreSQL with sequential scans priced out: a
    `Seq Scan` of a big table would mean no index can serve it. (The validation backlog counts
    two primary keys: an index-only scan, documented in docs/operations.md.)"""
    from cloud.db import create_or_migrate, make_engine

    engine = make_engine(pg_url)
    create_or_migrate(engine)
    try:
        _explain_scrape(engine)
    finally:
        engine.dispose()


def _explain_scrape(engine: sa.Engine) -> None:
    from cloud.cfdi.metrics import CfdiCollector

    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        registry = CollectorRegistry()
        registry.register(OperationsCollector(engine, backlog_ttl_s=0))
        registry.register(CfdiCollector(engine))
        with engine.begin() as conn:  # one unfinished run, so its chunk query runs too
            create_run(conn, RunSpec(("EXP-01",), "2026-11", chunk_size=2), contracts=ThreeContracts())
        generate_latest(registry)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(statements) >= 10
    seq = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        for sql, params in statements:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
            for table in re.findall(r"Seq Scan on (\w+)", plan):
                if table not in SMALL_TABLES:
                    seq.append(f"{table}: {sql.split()[:12]}")
    assert seq == []


def test_scrapes_log_the_row_security_bypass_once(sqlite_cloud) -> None:  # type: ignore[no-untyped-def]
    """Every scrape bypasses row-level security (it counts over every municipality); the log says
    so once per process at info, then at debug, not a line per scrape at info."""
    import io
    import json

    from sync.logs import configure_logging

    out = io.StringIO()
    configure_logging("debug", stream=out)
    try:
        for _ in range(3):
            assert sqlite_cloud.client.get("/metrics").status_code == 200
    finally:
        configure_logging("warning")
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]
    bypass = [x for x in lines if x["event"] == "row_security_bypass" and x["reason"] == "metrics"]
    assert len(bypass) >= 6  # two collectors, three scrapes
    assert len([x for x in bypass if x["level"] == "info"]) <= 1
    assert {x["level"] for x in bypass} <= {"info", "debug"}


def test_routine_sync_requests_are_logged_at_debug_failures_at_info(cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from sync.logs import configure_logging

    gw, site = cloud.node()
    out = io.StringIO()
    configure_logging("info", stream=out)
    try:
        store = EdgeStore.open(tmp_path / "gw.db", site_id=site)
        try:
            SyncClient(store, HttpxTransport(cloud.client), gw["Authorization"].split()[1], peer="cloud").sync()
        finally:
            store.close()
        assert cloud.client.post("/api/v2/sync/pull", content=b"\xa0").status_code == 401
        assert cloud.client.get("/api/v2/whoami", headers=gw).status_code == 200
    finally:
        configure_logging("warning")
    requests = [json.loads(x) for x in out.getvalue().splitlines() if '"request"' in x]
    assert [(r["path"], r["status"]) for r in requests] == [("/api/v2/sync/pull", 401), ("/api/v2/whoami", 200)]
