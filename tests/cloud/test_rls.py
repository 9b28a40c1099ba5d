"""Row-level security on PostgreSQL (cloud/row_security.py): with the tenant filter deliberately
left out, a query of one municipality still sees and writes none of another's rows.

Every tenant table (each with a `municipality` column, found from the metadata) is seeded with
rows of EXP-01, EXP-02 and no municipality, made from the column types; foreign keys are off
while seeding (`session_replication_role`), since the rows only have to exist. PostgreSQL only:
SQLite has no RLS (the last test checks that nothing changes there).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool
from starlette.concurrency import run_in_threadpool

from cloud import row_security
from cloud.api.deps import get_engine
from cloud.app import API_PREFIX, create_app
from cloud.auth import Principal, create_node, create_user, current_principal
from cloud.db import create_or_migrate, import_table_modules, make_engine, metadata, normalise_url
from cloud.settings import CloudSettings
from cloud.sync import writes
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from sync import messages, wire
from sync.changes import Change
from sync.hlc import pack, wall_ms
from sync.ids import uuid7

import_table_modules()
TENANT_TABLES = [t.name for t in row_security.tenant_tables(metadata)]
CHILDREN = {t.name: fk for t, fk in row_security.child_tables(metadata)}
A, B = "EXP-01", "EXP-02"
_counter = itertools.count(1)
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.postgres


def synthetic_row(table: sa.Table, municipality: str | None) -> dict[str, Any]:
    """A row of `table` for `municipality`: every column filled, every value unique and positive."""
    row: dict[str, Any] = {}
    for col in table.c:
        k = next(_counter)
        t = col.type
        if col.name == row_security.TENANT_COLUMN:
            v: Any = municipality
        elif col.name in row_security.ALSO_VISIBLE_BY.get(table.name, ()):
            v = None
        elif isinstance(t, sa.Boolean):
            v = True
        elif isinstance(t, sa.Integer):
            v = k
        elif isinstance(t, sa.Float):
            v = (k % 9000) / 100.0  # below 90: coordinate columns carry a WGS84 range CHECK
        elif isinstance(t, sa.Numeric):
            v = Decimal(k)
        elif isinstance(t, sa.DateTime):
            v = BASE_TIME + timedelta(seconds=k)
        elif isinstance(t, sa.Date):
            v = date(2026, 1, 1) + timedelta(days=k % 3000)
        elif isinstance(t, sa.JSON):
            v = {}
        elif isinstance(t, sa.LargeBinary):
            v = b"x"
        elif isinstance(t, sa.String):
            v = f"r{k}"[: t.length] if t.length else f"r{k}"
        else:
            raise AssertionError(f"{table.name}.{col.name}: no synthetic value for {t!r}")
        row[col.name] = v
    return row


def _no_fk_engine(url: str) -> Engine:
    """Its own connections (NullPool: closed on release), with foreign-key triggers off for the
    session, so a synthetic row is judged only by the tenant policy."""
    engine = sa.create_engine(normalise_url(url), poolclass=NullPool)
    row_security.install(engine)

    @event.listens_for(engine, "connect")
    def _replica(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:  # as the superuser the tests connect as
            cur.execute("SET session_replication_role = replica")
        dbapi_conn.commit()

    return engine


class Seeded:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        create_or_migrate(self.engine)
        self.raw = _no_fk_engine(url)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        with self.raw.begin() as conn:
            for name in TENANT_TABLES:
                table = metadata.tables[name]
                rows = [synthetic_row(table, m) for m in (A, A, A, B, B, B)]
                if table.c.municipality.nullable:
                    rows.append(synthetic_row(table, None))
                conn.execute(table.insert(), rows)
                self.rows[name] = rows
            # Child rows: one under each of the first two parent rows of EXP-01 and of EXP-02
            # (the third stays childless: some children are one per parent).
            for name in CHILDREN:
                children = [self.child_row(name, m, nth) for m in (A, B) for nth in (0, 1)]
                conn.execute(metadata.tables[name].insert(), children)
            # A changelog entry of a row that moved from EXP-01 to EXP-03: EXP-01's nodes
            # must still see it (to delete their copy).
            moved = synthetic_row(metadata.tables["sync_log"], "EXP-03")
            moved["old_municipality"] = A
            conn.execute(metadata.tables["sync_log"].insert(), [moved])
        self.moved_seq = moved["seq"]

    def child_row(self, table: str, municipality: str, nth: int = 2) -> dict[str, Any]:
        """A row of child `table` under the nth parent row of `municipality`."""
        fk = CHILDREN[table]
        parent = [r for r in self.rows[fk.column.table.name] if r["municipality"] == municipality][nth]
        row = synthetic_row(metadata.tables[table], None)
        row[fk.parent.name] = parent[fk.column.name]
        return row

    def owners(self, table: str) -> list[str | None]:
        """The municipality of each visible row of child `table`, from its parent (as system)."""
        fk = CHILDREN[table]
        parent = fk.column.table.name
        with self.engine.begin() as conn:
            keys = conn.exec_driver_sql(f'SELECT "{fk.parent.name}" FROM "{table}"').scalars().all()
            owner = dict(conn.exec_driver_sql(f'SELECT "{fk.column.name}", municipality FROM "{parent}"').all())
        return [owner.get(k) for k in keys]


@pytest.fixture(scope="module")
def seeded(pg_url_module: str) -> Iterator[Seeded]:
    s = Seeded(pg_url_module)
    try:
        yield s
    finally:
        s.engine.dispose()
        s.raw.dispose()


def _municipalities(engine: Engine, table: str) -> list[str | None]:
    with engine.begin() as conn:
        return [r["municipality"] for r in conn.exec_driver_sql(f'SELECT * FROM "{table}"').mappings()]


def test_every_tenant_table_is_under_a_policy_for_a_role_that_cannot_bypass_it(seeded: Seeded) -> None:
    assert {"readings", "telemetry", "anomalies", "work_orders", "meters", "service_points", "contracts",
            "customers", "invoices", "payments", "cfdi_documents", "users", "nodes"} <= set(TENANT_TABLES)
    with seeded.engine.begin() as conn:
        enabled = set(conn.exec_driver_sql("SELECT relname FROM pg_class WHERE relrowsecurity").scalars())
        policies = set(conn.exec_driver_sql(
            f"SELECT tablename FROM pg_policies WHERE policyname = '{row_security.POLICY}'").scalars())
        role = conn.exec_driver_sql(
            f"SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = '{row_security.APP_ROLE}'").one()
        truncate = conn.exec_driver_sql(
            f"SELECT has_table_privilege('{row_security.APP_ROLE}', 'readings', 'TRUNCATE')").scalar()
    with seeded.engine.begin() as conn:
        children = set(conn.exec_driver_sql(
            f"SELECT tablename FROM pg_policies WHERE policyname = '{row_security.CHILD_POLICY}'").scalars())
    assert {"payment_allocations", "statement_lines", "cfdi_payment_parts"} <= set(CHILDREN)
    assert set(TENANT_TABLES) | set(CHILDREN) <= enabled
    assert set(TENANT_TABLES) <= policies
    assert set(CHILDREN) <= children
    assert tuple(role) == (False, False, False)
    assert truncate is False  # TRUNCATE ignores row-level security


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_query_without_the_tenant_filter_sees_only_its_municipality(seeded: Seeded, table: str) -> None:
    with row_security.tenant_scope(B):
        seen = _municipalities(seeded.engine, table)
    assert seen and set(seen) == {B}, f"{table}: EXP-02 saw {sorted(map(str, seen))}"
    # The rows are there: the policy, not an empty table, hides them.
    everything = _municipalities(seeded.engine, table)
    assert {A, B} <= set(everything)
    with row_security.tenant_scope(row_security.ALL):
        assert sorted(map(str, _municipalities(seeded.engine, table))) == sorted(map(str, everything))
    with row_security.tenant_scope(None):  # a request not yet authenticated
        assert _municipalities(seeded.engine, table) == []


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_writes_reach_only_rows_of_its_municipality(seeded: Seeded, table: str) -> None:
    t = metadata.tables[table]
    before = _municipalities(seeded.engine, table)
    own = before.count(B)
    with row_security.tenant_scope(B), seeded.raw.connect() as conn:
        # Insert for another municipality: refused by the policy's WITH CHECK.
        with pytest.raises(ProgrammingError) as refused:
            conn.execute(t.insert().values(synthetic_row(t, A)))
        assert getattr(refused.value.orig, "sqlstate", None) == "42501"
        assert "row-level security" in str(refused.value.orig)
        conn.rollback()
        # Its own municipality: accepted (the refusal is about the tenant, not the row).
        conn.execute(t.insert().values(synthetic_row(t, B)))
        conn.rollback()
        # UPDATE and DELETE without WHERE touch only its own rows.
        assert conn.execute(t.update().values(municipality=t.c.municipality)).rowcount == own
        conn.rollback()
        with pytest.raises(ProgrammingError) as moved:
            conn.execute(t.update().values(municipality=A))
        assert getattr(moved.value.orig, "sqlstate", None) == "42501"
        conn.rollback()
        assert conn.execute(t.delete()).rowcount == own
        conn.rollback()
    assert _municipalities(seeded.engine, table).count(A) == before.count(A) >= 3


@pytest.mark.parametrize("table", sorted(CHILDREN))
def test_child_rows_follow_their_parents_municipality(seeded: Seeded, table: str) -> None:
    """Payment allocations, statement lines, CFDI parts…: no municipality column of their own;
    a row is visible and writable when its parent row is."""
    t, fk = metadata.tables[table], CHILDREN[table]
    everything = seeded.owners(table)
    assert everything.count(A) >= 2 and everything.count(B) >= 2
    with row_security.tenant_scope(B), seeded.engine.begin() as conn:
        keys = conn.exec_driver_sql(f'SELECT "{fk.parent.name}" FROM "{table}"').scalars().all()
    with seeded.engine.begin() as conn:
        b_parents = set(conn.exec_driver_sql(
            f'SELECT "{fk.column.name}" FROM "{fk.column.table.name}" WHERE municipality = %(m)s', {"m": B}).scalars())
    assert keys and set(keys) <= b_parents and len(keys) == everything.count(B)
    with row_security.tenant_scope(B), seeded.raw.connect() as conn:
        with pytest.raises(ProgrammingError) as refused:
            conn.execute(t.insert().values(seeded.child_row(table, A)))
        assert getattr(refused.value.orig, "sqlstate", None) == "42501"
        conn.rollback()
        conn.execute(t.insert().values(seeded.child_row(table, B)))
        conn.rollback()
        a_parent = seeded.child_row(table, A)[fk.parent.name]
        with pytest.raises(ProgrammingError, match="row-level security"):
            conn.execute(t.update().values({fk.parent.name: a_parent}))
        conn.rollback()
        assert conn.execute(t.delete()).rowcount == everything.count(B)
        conn.rollback()
    assert seeded.owners(table).count(A) == everything.count(A)


SCOPES = st.sampled_from([A, B, "EXP-03", "EXP-13", row_security.ALL, None, "", "exp-01", "EXP-01 ",
                          "EXP-02' OR '1'='1", "%", "*,EXP-01"])


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(TENANT_TABLES + sorted(CHILDREN)), scope=SCOPES)
def test_any_scope_sees_exactly_the_rows_the_rule_names(seeded: Seeded, table: str, scope: str | None) -> None:
    """The rule, for any table and scope value (odd and hostile ones included): `*` sees every
    row, a municipality code its own rows (and, in the changelog, rows that left it), anything
    else nothing. A child row goes with its parent."""
    t = metadata.tables[table]
    tenant_table = table if table in TENANT_TABLES else CHILDREN[table].column.table.name
    extra = row_security.ALSO_VISIBLE_BY.get(tenant_table, ())
    pk = [c.name for c in t.primary_key.columns]

    def keys(conn: Any) -> set[tuple[Any, ...]]:
        return {tuple(r) for r in conn.execute(sa.select(*[t.c[c] for c in pk]))}

    with seeded.engine.begin() as conn:
        everything = keys(conn)
        if table in TENANT_TABLES:
            owners = {tuple(r[:len(pk)]): set(r[len(pk):]) for r in conn.execute(
                sa.select(*[t.c[c] for c in pk], t.c.municipality, *[t.c[c] for c in extra]))}
        else:
            fk = CHILDREN[table]
            parent = fk.column.table
            owners = {tuple(r[:len(pk)]): {r[-1]} for r in conn.execute(
                sa.select(*[t.c[c] for c in pk], parent.c.municipality)
                .join(parent, parent.c[fk.column.name] == t.c[fk.parent.name]))}
    with row_security.tenant_scope(scope), seeded.engine.begin() as conn:
        seen = keys(conn)
    if scope == row_security.ALL:
        assert seen == everything
    else:
        assert seen == {k for k, who in owners.items() if scope and scope in who}


def test_a_changelog_entry_of_a_row_moved_away_still_reaches_the_old_municipality(seeded: Seeded) -> None:
    def seqs(municipality: str) -> set[int]:
        with row_security.tenant_scope(municipality), seeded.engine.begin() as conn:
            return set(conn.exec_driver_sql("SELECT seq FROM sync_log").scalars())

    assert seeded.moved_seq in seqs(A)
    assert seeded.moved_seq in seqs("EXP-03")
    assert seeded.moved_seq not in seqs(B)


def test_the_scope_ends_with_the_transaction(seeded: Seeded) -> None:
    engine = make_engine(seeded.url, pool_size=1, max_overflow=0)
    try:
        who = "SELECT current_user, current_setting('app.municipality', true)"
        with row_security.tenant_scope(B), engine.begin() as conn:
            assert tuple(conn.exec_driver_sql(who).one()) == (row_security.APP_ROLE, B)
        with pytest.raises(ProgrammingError), row_security.tenant_scope(B), engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO users (id) VALUES ('x')")
        # The same pooled connection, now outside any scope: its own role, no municipality.
        with engine.begin() as conn:
            user, setting = conn.exec_driver_sql(who).one()
            assert user != row_security.APP_ROLE and not setting
            assert {A, B} <= set(conn.exec_driver_sql("SELECT municipality FROM users").scalars())
        # Several transactions on one connection each take the scope current at their start.
        with engine.connect() as conn:
            with row_security.tenant_scope(A):
                assert set(conn.exec_driver_sql("SELECT municipality FROM users").scalars()) == {A}
                conn.commit()
            assert {A, B} <= set(conn.exec_driver_sql("SELECT municipality FROM users").scalars())
            conn.commit()
    finally:
        engine.dispose()


def test_an_unrestricted_lookup_sees_across_municipalities_then_the_tenant_role_returns(seeded: Seeded) -> None:
    users = "SELECT municipality FROM users"
    with row_security.tenant_scope(B), seeded.engine.begin() as conn:
        with row_security.unrestricted(conn, "test"):
            assert {A, B} <= set(conn.exec_driver_sql(users).scalars())
        assert set(conn.exec_driver_sql(users).scalars()) == {B}
        # A Python error inside the block: the transaction goes on, restricted again.
        with pytest.raises(KeyError), row_security.unrestricted(conn, "test"):
            raise KeyError("x")
        assert set(conn.exec_driver_sql(users).scalars()) == {B}
    # An SQL error inside: its own error surfaces (the transaction can only roll back).
    with pytest.raises(ProgrammingError, match="no_such_table"), row_security.tenant_scope(B), \
            seeded.engine.begin() as conn, row_security.unrestricted(conn, "test"):
        conn.exec_driver_sql("SELECT * FROM no_such_table")


def test_autocommit_is_refused_in_a_tenant_scope(seeded: Seeded) -> None:
    # A transaction-local scope would end with the first statement: the rest would run unrestricted.
    with row_security.tenant_scope(B), seeded.engine.connect() as conn:
        with pytest.raises(RuntimeError, match="autocommit"):
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("SELECT municipality FROM users").all()


COUNT_POLICIES = sa.text("SELECT count(*) FROM pg_policies WHERE policyname LIKE 'tenant_isolation%'")


def test_migrating_again_keeps_current_policies_and_replaces_old_ones(seeded: Seeded) -> None:
    with seeded.engine.begin() as conn:
        conn.exec_driver_sql("CREATE POLICY tenant_isolation_v0 ON zones USING (true)")
        before = conn.execute(COUNT_POLICIES).scalar()
    create_or_migrate(seeded.engine)
    with seeded.engine.begin() as conn:
        names = conn.exec_driver_sql("SELECT policyname FROM pg_policies WHERE tablename = 'zones'").scalars().all()
        after = conn.execute(COUNT_POLICIES).scalar()
    assert names == [row_security.POLICY]
    assert after == before - 1 == len(TENANT_TABLES) + len(CHILDREN)


# --- Through the API: the request's principal sets the scope -----------------------------------

probe = APIRouter(prefix="/rls-probe")
EngineDep = Annotated[Engine, Depends(get_engine)]


def _unfiltered(engine: Engine, table: str) -> list[str | None]:
    """The bug RLS backs up: a query with its tenant filter missing."""
    if table not in TENANT_TABLES:
        raise HTTPException(404, f"no tenant table {table!r}")
    return _municipalities(engine, table)


@probe.get("/sync/{table}")
def probe_sync(table: str, _p: Annotated[Principal, Depends(current_principal)], engine: EngineDep) -> list[str | None]:
    return _unfiltered(engine, table)


@probe.get("/async/{table}")
async def probe_async(table: str, _p: Annotated[Principal, Depends(current_principal)],
                      engine: EngineDep) -> list[str | None]:
    # As the sync router does: the transaction is opened in the thread pool.
    return await run_in_threadpool(_unfiltered, engine, table)


@probe.get("/public/{table}")
def probe_public(table: str, engine: EngineDep) -> list[str | None]:
    return _unfiltered(engine, table)


@probe.post("/insert/{table}/{municipality}")
def probe_insert(table: str, municipality: str, _p: Annotated[Principal, Depends(current_principal)],
                 engine: EngineDep) -> dict[str, str]:
    t = metadata.tables[table]
    with engine.begin() as conn:
        conn.execute(t.insert().values(synthetic_row(t, municipality)))
    return {"inserted": table}


class Api:
    def __init__(self, seeded: Seeded) -> None:
        settings = CloudSettings(db_url=seeded.url, log_json=False, log_level="warning", vee_interval_s=0,
                                 workorder_interval_s=0, sync_maintenance_interval_s=0)
        self.app = create_app(settings)
        self.app.include_router(probe, prefix=API_PREFIX)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        with seeded.engine.begin() as conn:
            self.tokens = {
                "user": create_user(conn, name="admin EXP-02", role="admin", municipality=B)["token"],
                "node": create_node(conn, kind="gateway", municipality=B, zone=f"{B}-Z01")["token"],
                "central": create_user(conn, name="central", role="admin", municipality="*")["token"],
            }

    def get(self, path: str, who: str | None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.get(f"{API_PREFIX}/rls-probe/{path}", headers=headers)


@pytest.fixture(scope="module")
def api(seeded: Seeded) -> Iterator[Api]:
    a = Api(seeded)
    try:
        yield a
    finally:
        a.client.close()
        a.app.state.engine.dispose()


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_request_without_the_tenant_filter_sees_only_the_callers_municipality(api: Api, table: str) -> None:
    for who in ("user", "node"):
        for kind in ("sync", "async"):
            r = api.get(f"{kind}/{table}", who)
            assert r.status_code == 200, r.text
            assert r.json() and set(r.json()) == {B}, f"{who}/{kind} on {table}: {r.json()}"
    central = api.get(f"sync/{table}", "central")
    assert {A, B} <= set(central.json())
    # A route that forgot to authenticate sees no tenant row at all.
    assert api.get(f"public/{table}", None).json() == []


def test_a_write_into_another_municipality_is_a_logged_403(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.tokens['user']}"}
    r = api.client.post(f"{API_PREFIX}/rls-probe/insert/readings/{A}", headers=headers)
    assert r.status_code == 403
    # RFC 9457 problem details (with the deprecated 2.0 members `error`/`reason` kept for one release)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "urn:aquacis:problem:forbidden", "title": "Forbidden", "status": 403,
                        "detail": "no access to rows of another municipality", "instance": r.request.url.path,
                        "error": "forbidden", "reason": "no access to rows of another municipality"}
    assert api.client.post(f"{API_PREFIX}/rls-probe/insert/readings/{B}", headers=headers).status_code == 200


def test_sync_requests_run_in_the_nodes_municipality(pg_url: str, tmp_path: Path) -> None:
    """The sync router opens its own transaction in the thread pool: it is scoped too. Every
    transaction of the node's requests runs as the app role with the node's municipality,
    except the token lookup, which reads only the credential tables."""
    settings = CloudSettings(db_url=pg_url, log_json=False, log_level="warning", vee_interval_s=0,
                             workorder_interval_s=0, sync_maintenance_interval_s=0)
    app = create_app(settings)
    engine: Engine = app.state.engine
    with engine.begin() as conn:
        for m in (A, B):
            writes.write_rows(conn, "meters", [{"id": f"{m}-m{i}", "municipality": m, "zone": f"{m}-Z01",
                                                "serial": f"{m}-S{i}"} for i in range(3)])
        cred = create_node(conn, kind="gateway", municipality=B, zone=f"{B}-Z01")
    scoped: list[tuple[str, str]] = []
    unscoped: list[str] = []

    def record_begin(conn: Any) -> None:
        if row_security.current_scope() is not None:
            with conn.connection.dbapi_connection.cursor() as cur:
                cur.execute("SELECT current_user, current_setting('app.municipality', true)")
                scoped.append(tuple(cur.fetchone()))

    def record_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if row_security.current_scope() is None:
            unscoped.append(statement)

    event.listen(engine, "begin", record_begin)
    event.listen(engine, "before_cursor_execute", record_statement)
    store = EdgeStore.open(tmp_path / "gw.db", site_id=cred["site_id"])
    try:
        with TestClient(app) as client:
            SyncClient(store, HttpxTransport(client), cred["token"], peer="cloud").sync()
    finally:
        event.remove(engine, "begin", record_begin)
        event.remove(engine, "before_cursor_execute", record_statement)
        engine.dispose()
    assert {r["id"] for r in store.rows("meters")} == {f"{B}-m{i}" for i in range(3)}
    assert scoped and set(scoped) == {(row_security.APP_ROLE, B)}
    assert unscoped and all(re.search(r"\bFROM (users|nodes)\b", s) for s in unscoped), unscoped


def test_sqlite_is_unchanged(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        row_security.install(engine)
        assert not event.contains(engine, "begin", row_security._on_begin)  # noqa: SLF001
        create_or_migrate(engine)
        with engine.begin() as conn:
            create_user(conn, name="a", role="admin", municipality=A)
        with row_security.tenant_scope(B):
            # No RLS on SQLite: the application's own filters are the only guard there.
            assert _municipalities(engine, "users") == [A]
    finally:
        engine.dispose()


def test_concurrent_migrations_of_one_database_all_succeed(pg_url: str) -> None:
    """Several API processes may start at once with `auto_migrate`: policies, grants and tables
    are made once, the others wait and find them."""
    code = ("import sys; from cloud.db import create_or_migrate, make_engine; "
            "e = make_engine(sys.argv[1]); create_or_migrate(e); e.dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    failures = [err for p in procs for _, err in [p.communicate(timeout=120)] if p.returncode != 0]
    assert failures == []
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            n = conn.execute(COUNT_POLICIES).scalar()
    finally:
        engine.dispose()
    assert n == len(TENANT_TABLES) + len(CHILDREN)


# --- The sync push judges by the whole registry on both databases ------------------------------
# RLS hides another municipality's rows from a node's transaction; the push's own lookups that
# judge a change (does this row or fact exist, where is this meter) must still see them, or a
# change the server should refuse one by one becomes a failed batch or a silent drop.

class SyncCloud:
    def __init__(self, url: str) -> None:
        settings = CloudSettings(db_url=url, log_json=False, log_level="warning", vee_interval_s=0,
                                 workorder_interval_s=0, sync_maintenance_interval_s=0)
        self.app = create_app(settings)
        self.engine: Engine = self.app.state.engine
        self.client = TestClient(self.app, raise_server_exceptions=False)
        with self.engine.begin() as conn:
            writes.write_rows(conn, "meters", [{"id": "m1", "municipality": A, "zone": f"{A}-Z01", "serial": "S1"}])
            writes.write_rows(conn, "work_orders", [{"id": "wo1", "municipality": A, "zone": f"{A}-Z01",
                                                     "status": "assigned", "type": "leak"}])

    def node(self, kind: str, municipality: str) -> dict[str, Any]:
        with self.engine.begin() as conn:
            return create_node(conn, kind=kind, municipality=municipality, zone=f"{municipality}-Z01")

    def push(self, cred: dict[str, Any], changes: list[Change]) -> messages.PushResult:
        r = self.client.post(f"{API_PREFIX}/sync/push", content=wire.encode(messages.PushBatch(cred["site_id"], changes)),
                             headers={"Authorization": f"Bearer {cred['token']}", "Content-Type": wire.CONTENT_TYPE})
        assert r.status_code == 200, r.content
        res = wire.decode(r.content)
        assert isinstance(res, messages.PushResult)
        return res

    def one(self, sql: str) -> Any:
        with self.engine.begin() as conn:
            return conn.exec_driver_sql(sql).one_or_none()


@pytest.fixture
def sync_cloud(db_url: str) -> Iterator[SyncCloud]:
    c = SyncCloud(db_url)
    try:
        yield c
    finally:
        c.client.close()
        c.engine.dispose()


def _reading(site: str, seq: int, municipality: str, serial: str, rid: str | None = None) -> Change:
    rid = rid or uuid7()
    zone = f"{municipality}-Z01"
    row = {"id": rid, "municipality": municipality, "zone": zone, "meter_serial": serial,
           "taken_at": wall_ms() - 60_000, "value_l": 1000, "source": "lorawan"}
    return Change("readings", rid, site, seq, pack(wall_ms()), "insert", row, 0, municipality, zone)


def test_a_row_of_another_municipality_is_refused_out_of_scope_not_a_failed_batch(sync_cloud: SyncCloud) -> None:
    gw = sync_cloud.node("gateway", B)
    claim = Change("work_orders", "wo1", gw["site_id"], 1, pack(wall_ms()), "set",
                   {"description": "mine now", "municipality": B, "zone": f"{B}-Z01", "type": "leak",
                    "status": "created"}, 1, B, f"{B}-Z01")
    res = sync_cloud.push(gw, [claim])
    assert [r.code for r in res.refusals] == ["out_of_scope"]
    assert res.acked == {gw["site_id"]: 1}
    assert tuple(sync_cloud.one("SELECT municipality, description FROM work_orders WHERE id = 'wo1'")) == (A, None)


def test_an_edit_queued_before_its_row_moved_away_is_refused_and_the_rest_of_the_batch_lands(
        sync_cloud: SyncCloud) -> None:
    """An honest handheld edited an order that central staff then moved to another municipality."""
    hh = sync_cloud.node("handheld", A)
    with sync_cloud.engine.begin() as conn:
        writes.write_rows(conn, "work_orders", [{"id": "wo1", "municipality": B, "zone": f"{B}-Z01"}])
    edit = Change("work_orders", "wo1", hh["site_id"], 1, pack(wall_ms()), "set", {"notes": "fuga en banqueta"}, 1,
                  A, f"{A}-Z01")
    res = sync_cloud.push(hh, [edit, _reading(hh["site_id"], 2, A, "S1")])
    assert [(r.seq, r.code) for r in res.refusals] == [(1, "out_of_scope")]
    assert res.acked == {hh["site_id"]: 2}
    assert sync_cloud.one("SELECT count(*) FROM readings")[0] == 1


def test_a_fact_reusing_another_municipalitys_id_is_quarantined_not_silently_dropped(sync_cloud: SyncCloud) -> None:
    gw_a, gw_b = sync_cloud.node("gateway", A), sync_cloud.node("gateway", B)
    with sync_cloud.engine.begin() as conn:
        writes.write_rows(conn, "meters", [{"id": "m2", "municipality": B, "zone": f"{B}-Z01", "serial": "S2"}])
    honest = _reading(gw_a["site_id"], 1, A, "S1")
    assert sync_cloud.push(gw_a, [honest]).refusals == []
    copy = _reading(gw_b["site_id"], 1, B, "S2", rid=honest.pk)
    res = sync_cloud.push(gw_b, [copy])
    assert [r.code for r in res.refusals] == ["quarantined"]
    assert tuple(sync_cloud.one(f"SELECT municipality, meter_serial FROM readings WHERE id = '{honest.pk}'")) == (A, "S1")
    assert sync_cloud.one(f"SELECT count(*) FROM sync_quarantine WHERE pk = '{honest.pk}'")[0] == 1
