"""`aquacis cloud tariffs …`: convert CEA Querétaro's tariff file into our format, inspect a bill."""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from cloud.tariffs.model import TariffError

app = typer.Typer(help="Tariff data: import CEA Querétaro tables, quote a bill.", no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CEA Querétaro source file (tarifas periódicas JSON)."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write our format (default: <version>.json "
                             "in --dir)."),
    directory: Path = typer.Option(Path("."), "--dir", envvar="AQUACIS_TARIFF_DIR",
                                   help="Folder of tariff versions (our format) the billing engine loads."),
    version: str = typer.Option("", help="Version name (default: cea-queretaro-YYYY-MM from vigenciaDesde)."),
    valid_to: str = typer.Option("", help="Last day + 1 of validity, ISO date (default: open-ended)."),
) -> None:
    """Convert FILE into our versioned tariff format and write it; errors name the bad entry."""
    from cloud.tariffs.convert import convert_cea_file, dumps

    try:
        doc = convert_cea_file(file, version=version or None, valid_to=valid_to or None)
    except (TariffError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    target = out or directory / f"{doc['version']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(doc), encoding="utf-8")
    summary = {"version": doc["version"], "validFrom": doc["validFrom"], "validTo": doc["validTo"],
               "tariffs": len(doc["tariffs"]), "schedules": len(doc["schedules"]),
               "discounts": len(doc["discounts"]), "warnings": doc["warnings"], "written": str(target)}
    json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


@app.command()
def quote(
    administration: str = typer.Option(..., help="Administration, EXP-01 … EXP-13."),
    use_class: str = typer.Option(..., help="Use class, e.g. DOM_MEDIO, COMERCIAL."),
    m3: str = typer.Option(..., help="Consumption in m³ (may have a fraction)."),
    start: str = typer.Option(..., help="First day of the period (ISO)."),
    end: str = typer.Option(..., help="Last day of the period (ISO, inclusive)."),
    services: str = typer.Option("water", help="Comma-separated: water,sewerage,sanitation."),
    units: int = typer.Option(1, help="Dwellings on one intake (multi-unit)."),
    tariff_dir: list[Path] = typer.Option([], "--tariffs", envvar="AQUACIS_TARIFF_DIR",
                                          help="Extra tariff versions (files or folders, our format)."),
) -> None:
    """Print the bill lines one contract would get (JSON)."""
    from cloud.tariffs.engine import BillRequest, compute_bill
    from cloud.tariffs.store import load_book

    try:
        book = load_book(list(tariff_dir))
        bill = compute_bill(book, BillRequest(administration, use_class, Decimal(m3), date.fromisoformat(start),
                                              date.fromisoformat(end), frozenset(services.split(",")), units))
    except (TariffError, ValueError, InvalidOperation) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    out = {"billedM3": bill.billed_m3, "lookupM3": bill.lookup_m3, "versions": list(bill.tariff_versions),
           "lines": [{"concept": ln.concept, "description": ln.description, "amount": str(ln.amount),
                      "vatRate": str(ln.vat_rate), "vat": str(ln.vat)} for ln in bill.lines],
           "subtotal": str(bill.subtotal), "vat": str(bill.vat), "total": str(bill.total)}
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
