"""`aquacis handheld order …`: the reader app's work-order actions for scripts and end-to-end
tests, through the same Repository methods the order screens call (and so the same checks:
a replacement order completes only with its replacement, in the shared result shape)."""

from __future__ import annotations

import json
from typing import Any

import typer

from sync.vocab.work_orders import ResultError

from .headless import HandheldError, open_repo
from .i18n import t
from .repository import IncompleteOrder, OrderClosed, Repository
from .validation import EntryError, parse_reading_m3

app = typer.Typer(help="Work orders on this handheld: list, start, replacement, complete, impossible.",
                  no_args_is_help=True)
DB = typer.Option("", envvar="AQUACIS_TUI_DB", help="Path of the handheld's local SQLite store.")


def _db(db: str) -> str:
    from .main import default_db_path

    return db or str(default_db_path())


def _run(db: str, action: Any) -> None:
    """Run `action(repo)` and print its JSON; a refusal is exit 2 with the reason (Spanish by
    default, as on the screens)."""
    try:
        repo = open_repo(_db(db))
    except HandheldError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(json.dumps(action(repo), ensure_ascii=False))
    except LookupError as exc:
        typer.echo(t("order_unknown", order=str(exc)), err=True)
        raise typer.Exit(2) from None
    except OrderClosed as exc:
        typer.echo(t("order_closed", status=t(f"wo_status_{exc.status}")), err=True)
        raise typer.Exit(2) from None
    except EntryError as exc:
        typer.echo(t(exc.key, **exc.params), err=True)
        raise typer.Exit(2) from None
    except (IncompleteOrder, ResultError) as exc:
        key = {"result.replacement": "order_needs_replacement_cli",
               "result.installation": "order_needs_installation",
               "result.replacement.new_serial": "order_bad_new_serial"}.get(exc.field)
        typer.echo(t(key) if key else t("order_result_invalid", field=exc.field), err=True)
        raise typer.Exit(2) from None
    finally:
        repo.store.close()


@app.command("list")
def list_orders(db: str = DB) -> None:
    """Open work orders of this handheld."""
    _run(db, lambda repo: [{k: o.get(k) for k in ("id", "type", "status", "priority", "meter_serial",
                                                   "description")} for o in repo.work_orders()])


@app.command()
def start(order: str = typer.Argument(..., help="Work-order id."), db: str = DB) -> None:
    """Start an order (in progress)."""
    def go(repo: Repository) -> dict[str, Any]:
        repo.start_order(order)
        return {"id": order, "status": (repo.work_order(order) or {}).get("status")}
    _run(db, go)


@app.command()
def replace(
    order: str = typer.Argument(..., help="Work-order id."),
    old_final: str = typer.Option(..., help="Final reading of the removed meter, m³ (e.g. 1030.250)."),
    new_serial: str = typer.Option(..., help="Serial of the new meter."),
    new_initial: str = typer.Option(..., help="Initial reading of the new meter, m³."),
    db: str = DB,
) -> None:
    """Record a meter replacement on the order (applied by the cloud once the order completes)."""
    def go(repo: Repository) -> dict[str, Any]:
        return repo.record_replacement(order, parse_reading_m3(old_final), new_serial.strip(),
                                       parse_reading_m3(new_initial))
    _run(db, go)


@app.command()
def complete(order: str = typer.Argument(..., help="Work-order id."), notes: str = "", db: str = DB) -> None:
    """Complete an order (refused when its type needs data the result lacks)."""
    def go(repo: Repository) -> dict[str, Any]:
        repo.complete_order(order, notes)
        return {"id": order, "status": (repo.work_order(order) or {}).get("status")}
    _run(db, go)


@app.command()
def impossible(order: str = typer.Argument(..., help="Work-order id."),
               reason: str = typer.Option(..., help="Why it could not be done."), db: str = DB) -> None:
    """Close an order as impossible, with the reason."""
    def go(repo: Repository) -> dict[str, Any]:
        if not reason.strip():
            raise ResultError("result.reason", "required")
        repo.report_impossible(order, reason.strip()[:500])
        return {"id": order, "status": (repo.work_order(order) or {}).get("status")}
    _run(db, go)
