"""`aquacis gateway dead-letters list|export|replay` (rules in `gateway.dead_letters`).

`list` and `export` open the database read-only; `replay` writes, beside a running daemon if
need be (SQLite's write lock serialises them). None of them creates a database.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from gateway.dead_letters import (
    MAX_PAGE,
    DeadLetterError,
    Filter,
    check_id,
    check_limit,
    dropped_total,
    export,
    page,
    page_text,
    totals,
)

app = typer.Typer(help="Dead letters (messages that could not be decoded): list, export, replay.",
                  no_args_is_help=True)

DB = typer.Option(..., "--db", envvar="AQUACIS_GATEWAY_DB", help="Path of the gateway's SQLite database.")
MAX_EXPORT = 10_000_000
MAX_IDS = MAX_PAGE
MAX_REASON_FILTER = 200


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _check_limit(limit: int | None, cap: int) -> None:
    """`--limit` within 1..cap (None: no limit), or exit 2 naming it."""
    if limit is None:
        return
    try:
        check_limit(limit, cap)
    except DeadLetterError as e:
        raise _fail(str(e)) from e


def _is_gateway_db(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'"
                               ).fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False


@contextmanager
def _read_only(db: Path) -> Iterator[sqlite3.Connection]:
    if not Path(db).is_file() or not _is_gateway_db(Path(db)):
        raise _fail(f"no gateway database at {db}")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        yield con
    finally:
        con.close()


def _filter(after: str | None, reason: str | None, ids: list[str] | None = None) -> Filter:
    try:
        if reason is not None and (not reason.strip() or len(reason) > MAX_REASON_FILTER):
            raise DeadLetterError(f"--reason must be 1 to {MAX_REASON_FILTER} characters")
        if ids and len(ids) > MAX_IDS:
            raise DeadLetterError(f"--id given more than {MAX_IDS} times (use --reason or --all)")
        return Filter(after=check_id(after) if after else None, reason=reason,
                      ids=list(dict.fromkeys(check_id(i, "--id") for i in ids or [])))
    except DeadLetterError as e:
        raise _fail(str(e)) from e


@app.command("list")
def list_dead_letters(
    db: Path = DB,
    limit: int = typer.Option(50, help=f"Rows per page (1..{MAX_PAGE})."),
    after: str = typer.Option(None, help="Cursor: the `next` id of the previous page."),
    reason: str = typer.Option(None, help="Only those whose reason contains this text."),
    as_json: bool = typer.Option(True, "--json/--text", help="JSON (default) or lines for a terminal."),
) -> None:
    """One page of dead letters, oldest first (no payloads; `export` has them)."""
    _check_limit(limit, MAX_PAGE)
    flt = _filter(after, reason)
    with _read_only(db) as con:
        rows, nxt = page(con, flt, limit)
        n, size = totals(con)
        if not as_json:
            typer.echo("\n".join(page_text(rows, nxt, n, size, dropped_total(con))))
            return
        typer.echo(json.dumps({"dead_letters": rows, "next": nxt, "total": n, "bytes": size,
                               "dropped_total": dropped_total(con)}, ensure_ascii=False))


@app.command("export")
def export_dead_letters(
    db: Path = DB,
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (payload in base64) or csv (payload in hex)."),
    out: str = typer.Option("-", "--out", help="File to write; - for standard output."),
    force: bool = typer.Option(False, help="Overwrite an existing --out file."),
    after: str = typer.Option(None, help="Only ids after this one."),
    reason: str = typer.Option(None, help="Only those whose reason contains this text."),
    limit: int = typer.Option(None, help=f"At most this many (1..{MAX_EXPORT}); default all."),
) -> None:
    """Every matching dead letter with its raw payload, streamed (oldest first)."""
    if fmt not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv")
    _check_limit(limit, MAX_EXPORT)
    flt = _filter(after, reason)
    with _read_only(db) as con:
        if out == "-":
            n = export(con, sys.stdout, fmt, flt, limit)
            sys.stdout.flush()
        else:
            target = Path(out)
            if target.exists() and not force:
                raise _fail(f"{out} exists; pass --force to overwrite it")
            try:
                with open(target, "w", encoding="utf-8", newline="") as f:
                    n = export(con, f, fmt, flt, limit)
            except OSError as e:
                raise _fail(f"cannot write {out}: {e.strerror or e}") from e
    typer.echo(json.dumps({"exported": n, "format": fmt, "out": out}), err=True)


@app.command()
def replay(
    db: Path = DB,
    ids: list[str] = typer.Option(None, "--id", help=f"A dead letter to replay (repeatable, up to {MAX_IDS})."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter (or every one matching --reason)."),
    reason: str = typer.Option(None, help="Only those whose reason contains this text."),
    limit: int = typer.Option(None, help=f"At most this many (1..{MAX_EXPORT})."),
) -> None:
    """Decode dead letters again with the current codecs (after a codec fix). Decoded ones become
    readings and leave the dead letters (exactly once: a second replay finds nothing to do);
    failing ones stay with their new reason. Exit code 1 when some still fail."""
    if not ids and not all_ and reason is None:
        raise _fail("say which: --id ID (repeatable), --reason TEXT or --all")
    if ids and all_:
        raise _fail("--id and --all exclude each other")
    _check_limit(limit, MAX_EXPORT)
    flt = _filter(None, reason, ids)
    if not Path(db).is_file() or not _is_gateway_db(Path(db)):
        raise _fail(f"no gateway database at {db}")
    from gateway.dead_letter_replay import processor_for
    from gateway.dead_letter_replay import replay as do_replay
    from gateway.store import GatewayStore

    store = GatewayStore.open(db)
    try:
        try:
            proc = processor_for(store)
        except LookupError as e:
            raise _fail(str(e)) from e
        res = do_replay(store, proc, flt, limit)
    finally:
        store.close()
    doc = res.doc()
    if ids:
        doc["not_found"] = len(flt.ids) - res.examined
    typer.echo(json.dumps(doc))
    if res.failed:
        raise typer.Exit(1)
