"""PostgreSQL row-level security keyed on the municipality: the database backs the tenant filters.

Every table with a `municipality` column gets a policy: a row is visible and writable only when
its municipality equals the transaction's `app.municipality` setting, or that setting is `*`
(central staff). The policies bind the role `aquacis_app` (no login, no BYPASSRLS), not the
connecting role that owns the schema: superusers and table owners ignore RLS.

Who is restricted:
- An HTTP request is in a *tenant scope* from its first byte (`RowSecurityMiddleware`). Until
  the caller is authenticated the scope names no municipality (every tenant row is hidden);
  `cloud.auth.current_principal` then binds the principal's municipality to it.
- Each transaction begun in a tenant scope (the engine's `begin` event, whichever thread runs
  it: contextvars follow `run_in_threadpool`) switches to `aquacis_app` and sets
  `app.municipality`, both transaction-local (`set_config(..., true)`): they end with the
  transaction and never leak to the pool's next user.
- Outside a tenant scope (workers, CLI, migrations, seeds: system work with no principal) the
  connection keeps its own role, the schema owner, which RLS does not restrict. Inside a
  request the only such use is authentication itself (`system_scope("authenticate")`); any
  other in-request bypass is logged with its reason.

SQLite has no RLS: nothing here runs there and the application filters are the only guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from sync.logs import get_logger

APP_ROLE = "aquacis_app"
SETTING = "app.municipality"
ALL = "*"
# Versioned name: a changed rule gets a new name, so a migration replaces old policies and
# leaves current ones alone (no ACCESS EXCLUSIVE lock on every start).
POLICY = "tenant_isolation_v2"
CHILD_POLICY = "tenant_isolation_via_parent_v1"
TENANT_COLUMN = "municipality"
DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Extra columns that also admit a row: a changelog entry of a row that moved out of a
# municipality must still reach that municipality's nodes (they delete their copy).
ALSO_VISIBLE_BY: dict[str, tuple[str, ...]] = {"sync_log": ("old_municipality",)}

log = get_logger("cloud.row_security")


@dataclass
class TenantScope:
    """The municipality one request acts for; None until the caller is authenticated."""

    municipality: str | None = None


_scope: ContextVar[TenantScope | None] = ContextVar("aquacis_tenant_scope", default=None)


def current_scope() -> TenantScope | None:
    return _scope.get()


@contextmanager
def tenant_scope(municipality: str | None = None) -> Iterator[TenantScope]:
    """Run the block as a tenant: `municipality` (`*` = every one, None = none yet)."""
    scope = TenantScope(municipality)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


_bypass_reasons_seen: set[str] = set()


@contextmanager
def system_scope(reason: str) -> Iterator[None]:
    """Run the block as the system (the connecting role, not restricted by RLS).

    Inside a request this is a deliberate bypass and is logged with `reason`, except for
    `authenticate` (every request does it, before it knows its municipality)."""
    outer = _scope.get()
    if outer is not None and reason != "authenticate":
        # The first bypass of each reason at info, the rest at debug: a scrape of /metrics
        # every 15 s must not flood the log with the same line.
        first = reason not in _bypass_reasons_seen
        _bypass_reasons_seen.add(reason)
        (log.info if first else log.debug)("row_security_bypass", reason=reason, municipality=outer.municipality,
                                           first_of_reason=first)
    token = _scope.set(None)
    try:
        yield
    finally:
        _scope.reset(token)


@contextmanager
def unrestricted(conn: Connection, reason: str) -> Iterator[None]:
    """Within `conn`'s current transaction, run the block as the connecting role, then return
    to the tenant's role. For a narrow lookup that must see across municipalities to judge a
    request (e.g. whether a node's meter belongs to another municipality: refused as out of
    scope, not taken for an unknown meter). Outside a tenant scope or on SQLite: no change."""
    if conn.dialect.name != "postgresql" or _scope.get() is None:
        yield
        return
    log.debug("row_security_unrestricted", reason=reason)
    conn.exec_driver_sql("SELECT set_config('role', 'none', true)")
    try:
        yield
    finally:
        try:
            conn.exec_driver_sql(_RESTORE_ROLE, (APP_ROLE,))
        except sa.exc.DBAPIError as exc:
            # An aborted transaction can only roll back (which ends the role change too).
            if getattr(exc.orig, "sqlstate", None) != "25P02":
                raise


def bind_municipality(municipality: str) -> None:
    """The authenticated caller's municipality becomes the current request's scope (shared by
    the request's threadpool calls, which hold the same scope object)."""
    scope = _scope.get()
    if scope is not None:
        scope.municipality = municipality


class RowSecurityMiddleware:
    """ASGI middleware: every HTTP request runs in its own tenant scope (none bound yet)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with tenant_scope(None):
            await self.app(scope, receive, send)


_RESTORE_ROLE = "SELECT set_config('role', %s, true)"
_SET_SCOPE = f"SELECT set_config('role', %s, true), set_config('{SETTING}', %s, true)"


def _on_begin(conn: Connection) -> None:
    scope = _scope.get()
    if scope is None:
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or getattr(dbapi, "autocommit", False):
        # A transaction-local setting would end with the statement: refuse rather than run
        # the rest unrestricted.
        raise RuntimeError("row-level security needs a transaction; autocommit is not allowed in a tenant scope")
    cur = dbapi.cursor()
    try:
        cur.execute(_SET_SCOPE, (APP_ROLE, scope.municipality or ""))
    finally:
        cur.close()


def install(engine: Engine) -> None:
    """Make `engine` apply the tenant scope to every transaction (PostgreSQL only; idempotent)."""
    if engine.dialect.name != "postgresql" or event.contains(engine, "begin", _on_begin):
        return
    event.listen(engine, "begin", _on_begin)


def tenant_tables(metadata: sa.MetaData) -> list[sa.Table]:
    """Tables that hold tenant data: those with a `municipality` column."""
    return [t for t in metadata.sorted_tables if TENANT_COLUMN in t.c]


def child_tables(metadata: sa.MetaData) -> list[tuple[sa.Table, sa.ForeignKey]]:
    """Tables without the column whose rows belong to a tenant table's row (payment
    allocations, statement lines, CFDI parts…): each with its first foreign key to one."""
    out = []
    for table in metadata.sorted_tables:
        if TENANT_COLUMN in table.c:
            continue
        fks = sorted((fk for fk in table.foreign_keys if TENANT_COLUMN in fk.column.table.c),
                     key=lambda fk: list(table.c).index(fk.parent))
        if fks:
            out.append((table, fks[0]))
    return out


def policies(metadata: sa.MetaData) -> dict[str, tuple[str, str]]:
    """Table name → (policy name, predicate) for every table under row-level security.

    A tenant table: its municipality is the scope's (or the scope is `*`). A child table: its
    parent row is visible, which the parent's own policy decides (RLS applies inside the
    policy's subquery too)."""
    # In a scalar subquery the setting is read once per statement (an InitPlan), not once or
    # twice per row: the same value, since it is transaction-local and set between statements.
    # Per row it cost a backlog drain's 20,000-row insert ~65 % more time (v1, docs/sync.md).
    setting = f"(SELECT current_setting('{SETTING}', true))"
    out = {}
    for table in tenant_tables(metadata):
        columns = (TENANT_COLUMN, *ALSO_VISIBLE_BY.get(table.name, ()))
        ours = " OR ".join(f"{c} = {setting}" for c in columns)
        out[table.name] = (POLICY, f"({ours} OR {setting} = '{ALL}')")
    for table, fk in child_tables(metadata):
        parent = fk.column.table.name
        out[table.name] = (CHILD_POLICY, f'(EXISTS (SELECT 1 FROM "{parent}" p '
                                         f'WHERE p."{fk.column.name}" = "{table.name}"."{fk.parent.name}"))')
    return out


_ENSURE_ROLE = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- made meanwhile by the migration of another database of this cluster
END
$$
"""


def apply_policies(conn: Connection, metadata: sa.MetaData) -> list[str]:
    """Create the application role, its grants and the tenant policies (PostgreSQL; idempotent).

    Run by `cloud.db.create_or_migrate` as the connecting role, which must own the schema and
    may create roles (or a DBA creates `aquacis_app` beforehand). Returns the guarded tables."""
    if conn.dialect.name != "postgresql":
        return []
    conn.exec_driver_sql(_ENSURE_ROLE)
    role = conn.execute(
        sa.text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
    ).one()
    if role.rolsuper or role.rolbypassrls:
        raise RuntimeError(f"role {APP_ROLE} must not be superuser nor BYPASSRLS: row-level security would not hold")
    me = conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one()
    if not me and not conn.execute(sa.text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": APP_ROLE}).scalar():
        conn.exec_driver_sql(f"GRANT {APP_ROLE} TO CURRENT_USER")
    existing = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
    schema = _schema(conn)
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}")
    conn.exec_driver_sql(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {APP_ROLE}")
    granted = set(conn.execute(sa.text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND "
        + " AND ".join(f"has_table_privilege(:r, c.oid, '{p}')" for p in DML)
    ), {"r": APP_ROLE}).scalars())
    for table in metadata.sorted_tables:
        if table.name in existing and table.name not in granted:
            # No TRUNCATE: it ignores row-level security. Not alembic_version either.
            conn.exec_driver_sql(f'GRANT {", ".join(DML)} ON "{table.name}" TO {APP_ROLE}')
    wanted = {name: rule for name, rule in policies(metadata).items() if name in existing}
    present = {
        (r.tablename, r.policyname)
        for r in conn.execute(sa.text("SELECT tablename, policyname FROM pg_policies WHERE schemaname = current_schema()"))
    }
    enabled = set(conn.execute(sa.text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relrowsecurity")).scalars())
    for name, (policy, pred) in wanted.items():
        if name not in enabled:
            conn.exec_driver_sql(f'ALTER TABLE "{name}" ENABLE ROW LEVEL SECURITY')
        for tbl, old in present:
            if tbl == name and old != policy and old.startswith("tenant_isolation"):
                conn.exec_driver_sql(f'DROP POLICY "{old}" ON "{name}"')
        if (name, policy) not in present:
            conn.exec_driver_sql(f'CREATE POLICY {policy} ON "{name}" USING {pred} WITH CHECK {pred}')
    return sorted(wanted)


def _schema(conn: Connection) -> str:
    name = conn.execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    return str(name)
