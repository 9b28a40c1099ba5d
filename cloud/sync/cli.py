"""`aquacis cloud sync ...` (housekeeping, staff review of quarantined and parked facts) and
`aquacis cloud node ...` (field nodes: list, deactivate) from the command line.

Bad input exits 2 with `error: <reason>` on stderr; an entry already decided exits 1; an
unreachable database exits 3.
Resolutions from here are recorded with the actor `cli:<--by>` (an operator on the server)."""

from __future__ import annotations

import json
from typing import Any

import typer

from cloud.cli import CONFIG_HELP, DB_HELP, _engine, _print

app = typer.Typer(help="Sync housekeeping and staff review of quarantined and parked facts.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Facts quarantined for colliding with a stored fact (same id, other content).",
                             no_args_is_help=True)
parked_app = typer.Typer(help="Facts the registry could not place (unknown meter, time ahead of the clock, a retired origin), kept for staff.", no_args_is_help=True)
node_app = typer.Typer(help="Field nodes (gateways, handhelds): list, deactivate.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(parked_app, name="parked")

DbOpt = typer.Option(None, "--db", envvar="AQUACIS_DB_URL", help=DB_HELP)
ConfigOpt = typer.Option(None, envvar="AQUACIS_CONFIG", help=CONFIG_HELP)
MuniOpt = typer.Option(None, "--municipality", help="Only this municipality (EXP-01..EXP-13); default: all.")
NodeOpt = typer.Option(None, "--node", help="Only facts from this node (site id of the origin or sender).")
AfterOpt = typer.Option(None, "--after", min=0, max=2**62, help="The previous page's next_after.")
LimitOpt = typer.Option(100, "--limit", min=1, max=500, help="Entries per page (1-500).")
TextOpt = typer.Option(False, "--text", help="One line per entry instead of JSON.")
ByOpt = typer.Option(..., "--by", help="Who decides (name of the staff member; kept in the audit trail).")
NoteOpt = typer.Option(..., "--note", help="Why (kept in the audit trail).")


def _fail(exc: Any) -> typer.Exit:
    from cloud.sync.review import ReviewError

    if isinstance(exc, ReviewError):
        where = f" ({exc.field})" if exc.field else ""
        typer.echo(f"error: {exc.reason}{where}", err=True)
        return typer.Exit(1 if exc.status == 409 else 2)
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _operator(by: str, municipality: str | None = None) -> Any:
    """The operator as a central admin (or one limited to ``municipality``)."""
    from cloud.auth import ALL_MUNICIPALITIES, Principal

    by = by.strip()
    if not by or len(by) > 60:
        raise typer.BadParameter("give the name of who decides (1-60 characters)", param_hint="--by")
    return Principal("user", f"cli:{by}", "admin", municipality or ALL_MUNICIPALITIES)


def _escaped(ch: str) -> str:
    if ch.isprintable():
        return ch
    units = ch.encode("utf-16-be")  # a JSON \u escape per UTF-16 unit (surrogate pairs beyond the BMP)
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def _emit(doc: Any) -> None:
    """JSON on stdout with every non-printable character escaped (json escapes only C0
    controls; a node's strings may hold C1 or other terminal controls)."""
    typer.echo("".join(map(_escaped, json.dumps(doc, ensure_ascii=False))))


def _run(db: str | None, config: str | None, work: Any, *, write: bool = False, engine: bool = False) -> Any:
    """``work(conn)`` in a transaction (``write``) or a read, or ``work(engine)`` when it makes its own."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    from cloud.sync.review import ReviewError

    try:
        eng = _engine(db, config)
    except OperationalError as exc:
        typer.echo(f"error: cannot reach the database: {str(exc.orig).splitlines()[0][:200]}", err=True)
        raise typer.Exit(3) from exc
    try:
        if engine:
            return work(eng)
        with (eng.begin() if write else eng.connect()) as conn:
            return work(conn)
    except ReviewError as exc:
        raise _fail(exc) from exc
    except IntegrityError as exc:  # a concurrent resolution of the same entry
        typer.echo("error: resolved meanwhile by someone else", err=True)
        raise typer.Exit(1) from exc
    finally:
        eng.dispose()


def _clean(text: Any) -> str:
    """Printable text only: a node's strings must not drive the operator's terminal (escapes)."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(str(text).split()))


def _list_text(items: list[dict[str, Any]], nxt: int | None) -> None:
    """One line of at most 79 characters per entry (an 80-column terminal); JSON has it all."""
    for it in items:
        origin = it["origin"]
        where = it.get("scope_municipality") or "-"
        serial = (it.get("claimed") or {}).get("meter_serial") or (it.get("row") or {}).get("meter_serial") or "-"
        # the tail of a UUIDv7 is its random part (the head is the time, shared by nodes made together)
        node = f"{(origin.get('kind') or '?')[:2]}:{str(origin['site_id'])[-8:]}"
        line = f"{it['id']:>6} {it['status']:<9} {where:<6} {it['table'][:9]:<9} {_clean(serial)[:24]:<24} {node}"
        reason = _clean(it["reason"])
        if len(line) + 1 + len(reason) <= 79:
            typer.echo(f"{line} {reason}")
        else:
            typer.echo(line[:79])
            typer.echo(f"       {reason}"[:79])
    typer.echo(f"({len(items)} shown{'; next page: --after ' + str(nxt) if nxt is not None else ''})")


def _show(items: list[dict[str, Any]], nxt: int | None, text: bool) -> None:
    """A page of review entries: lines for a terminal (--text) or the JSON page."""
    if text:
        _list_text(items, nxt)
    else:
        _emit({"items": items, "next_after": nxt})


@quarantine_app.command("list")
def quarantine_list(
    status: str = typer.Option("open", "--status", help="open, resolved or all."),
    municipality: str = MuniOpt, node: str = NodeOpt, after: int = AfterOpt, limit: int = LimitOpt,
    text: bool = TextOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Quarantined facts, oldest first: reason, content, the stored fact, the node that sent it."""
    from cloud.sync.review import list_quarantine

    items, nxt = _run(db, config, lambda conn: list_quarantine(
        conn, municipality, status=None if status == "all" else status, node=node, after=after, limit=limit))
    _show(items, nxt, text)


@quarantine_app.command("resolve")
def quarantine_resolve(
    entry_id: int = typer.Argument(..., min=1, max=2**62, help="The entry's id (from list)."),
    action: str = typer.Option(..., "--action", help="keep_existing or accept_as_correction."),
    by: str = ByOpt, note: str = NoteOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Keep the stored fact, or accept the quarantined reading as a correction (a new reading
    superseding the stored one). Decided once."""
    from cloud.sync.review import resolve_quarantined

    who = _operator(by)
    _emit(_run(db, config, lambda conn: resolve_quarantined(conn, who, entry_id, action, note), write=True))


@parked_app.command("list")
def parked_list(
    status: str = typer.Option("parked", "--status", help="parked, resolved, discarded or all."),
    municipality: str = MuniOpt, node: str = NodeOpt, after: int = AfterOpt, limit: int = LimitOpt,
    text: bool = TextOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Parked facts, oldest first: reason, fields, origin and sending node."""
    from cloud.sync.review import list_parked

    items, nxt = _run(db, config, lambda conn: list_parked(
        conn, municipality, status=None if status == "all" else status, node=node, after=after, limit=limit))
    _show(items, nxt, text)


@parked_app.command("resolve")
def parked_resolve(
    entry_id: int = typer.Argument(..., min=1, max=2**62, help="The entry's id (from list)."),
    action: str = typer.Option(..., "--action", help="assign or discard."),
    meter: str = typer.Option(None, "--meter", help="For assign: the serial of a registry meter."),
    by: str = ByOpt, note: str = NoteOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Assign a parked fact to a meter of the registry (stored with that meter's zone) or discard it."""
    from cloud.sync.review import resolve_parked

    who = _operator(by)
    _emit(_run(db, config, lambda conn: resolve_parked(conn, who, entry_id, action, note, meter_serial=meter),
                write=True))


@parked_app.command("resolve-serial")
def parked_resolve_serial(
    claimed: str = typer.Argument(..., help="The meter serial as the node sent it (from list: claimed)."),
    action: str = typer.Option(..., "--action", help="assign or discard."),
    meter: str = typer.Option(None, "--meter", help="For assign: the serial of a registry meter."),
    limit: int = typer.Option(1000, "--limit", min=1, max=1000, help="At most this many (oldest first)."),
    municipality: str = typer.Option(None, "--municipality", help="Only facts sent by nodes of this municipality."),
    by: str = ByOpt, note: str = NoteOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Assign or discard every open parked fact naming one serial (each audited as if one by
    one); facts that cannot be are listed as skipped and stay parked."""
    from cloud.sync.review import resolve_parked_by_serial

    who = _operator(by, municipality)
    _emit(_run(db, config, lambda engine: resolve_parked_by_serial(engine, who, claimed, action, note,
                                                                   meter_serial=meter, limit=limit), engine=True))


@app.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be purged (no compaction)."),
    full: bool = typer.Option(False, "--full", help="Examine every row's changelog, not only what changed since the last pass."),
    compact: bool = typer.Option(True, "--compact/--no-compact", help="Also compact the changelog."),
    db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Purge tombstones every active node has applied, then compact the changelog; prints a
    JSON summary (purged rows per table, log entries deleted, the nodes holding purge back)."""
    from cloud.sync.maintenance import run_maintenance

    engine = _engine(db, config)
    try:
        _print(run_maintenance(engine, dry_run=dry_run, compact=compact, full=full))
    finally:
        engine.dispose()


@node_app.command("list")
def node_list(
    municipality: str = MuniOpt,
    active: bool = typer.Option(None, "--active/--inactive", help="Only active or only deactivated nodes."),
    blocking: bool = typer.Option(False, "--blocking", help="Also count the tombstones each node holds back "
                                                             "(reads every tombstone)."),
    text: bool = TextOpt, db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Registered field nodes: site id, kind, municipality, zone, active, last pull."""
    from cloud.sync.nodes import list_nodes

    out = _run(db, config, lambda conn: list_nodes(conn, municipality, active=active, blocking=blocking))
    if not text:
        _emit({"nodes": out})
        return
    for n in out:  # at most 79 columns: the full site id (to copy), kind, zone, state, last pull
        kind = {"gateway": "gw", "handheld": "hh"}.get(n["kind"], n["kind"][:2])
        last = (n["last_pull_at"] or "never").replace("T", " ")
        line = f"{n['site_id']} {kind} {n['zone'][:11]:<11} {'active' if n['active'] else 'retired':<7} "
        if blocking:
            typer.echo(f"{line}{last[:10]:<10} blocks {n['tombstones_blocked']}"[:79])
        else:
            typer.echo(f"{line}{last[:16]}"[:79])


@node_app.command("deactivate")
def node_deactivate(
    site_id: str = typer.Argument(..., help="The node's site id (from `node list`)."),
    note: str = typer.Option(None, "--note", help="Why (lost, stolen, replaced...; kept in the audit trail)."),
    db: str = DbOpt, config: str = ConfigOpt,
) -> None:
    """Retire a node: its token stops working at once and it no longer holds back tombstone
    purge. Not reversible: a returning device is registered anew with an empty store."""
    from cloud.sync.nodes import deactivate_node

    _emit(_run(db, config, lambda conn: deactivate_node(conn, None, site_id, note), write=True))


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="sync", help="Sync housekeeping and staff review of quarantined and parked facts.")
    parent.add_typer(node_app, name="node", help="Field nodes (gateways, handhelds): list, deactivate.")
