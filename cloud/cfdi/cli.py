"""`aquacis cloud cfdi …`: the stamping worker, the notification dispatcher, and a validator.

Configuration comes from AQUACIS_* environment variables (see cloud.cfdi.settings and
docs/cfdi.md, docs/notifications.md); flags override them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from sync.logs import configure_logging, get_logger

log = get_logger("cloud.cfdi.worker")

CONFIG_HELP = "TOML configuration file (keys of the [cloud] table); flags and AQUACIS_* variables win over it."

app = typer.Typer(help="CFDI 4.0: stamping worker, validation, customer notifications.", no_args_is_help=True)


def _engine(db: str | None, config: str | None):  # type: ignore[no-untyped-def]
    from cloud.cli import _engine as open_database

    return open_database(db, config)


def worker_pass(svc, sweep_billing, sweep_payments, cancel_reversed) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One pass of the stamp worker. A failing step is logged and retried next pass; it never
    stops the others (a PAC outage while cancelling must not stop stamping)."""
    from .from_billing import sweep_relations

    counts: dict[str, int] = {}
    steps = (
        ("issued_from_billing", lambda: sweep_billing(svc)["issued"]),
        ("stamp", lambda: svc.stamp_due()),  # {"stamped": n, "pending_fiscal": n, "rejected": n}
        ("payment_complements", lambda: sweep_payments(svc)["issued"]),
        ("complements_cancelled", lambda: cancel_reversed(svc)),
        ("relations", lambda: sweep_relations(svc)),  # substitutes (01), voids, credit notes
        # Last: sends this pass's requests (reversals, substitutes, voids) to the PAC.
        ("cancellations", lambda: svc.process_cancellations()),  # {"cancelled": n, "awaiting_acceptance": n, …}
    )
    for name, step in steps:
        try:
            n = step()
        except Exception as e:  # noqa: BLE001 - logged, retried on the next pass
            log.warning("stamp_worker_step_failed", step=name, error=str(e)[:300])
            counts[f"{name}_failed"] = 1
            continue
        if isinstance(n, dict):
            counts.update({k: v for k, v in n.items() if v})
        elif n:
            counts[name] = n
    return counts


@app.command("stamp-worker")
def stamp_worker(
    db: str = typer.Option(None, help="Cloud database URL.", envvar="AQUACIS_DB_URL"),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
    interval: float = typer.Option(5.0, help="Seconds between passes over due documents.",
                                   envvar="AQUACIS_CFDI_STAMP_INTERVAL"),
    once: bool = typer.Option(False, help="One pass, then exit (cron style)."),
    log_level: str = typer.Option("info", envvar="AQUACIS_LOG_LEVEL", help="debug, info, warning or error."),
) -> None:
    """Stamp pending_fiscal CFDIs through the configured PAC; PAC outages retry on the stored schedule."""
    from .wiring import service_from_settings

    configure_logging(log_level)
    engine = _engine(db, config)
    svc = service_from_settings(engine)
    if not svc.pac.fiscally_valid:
        log.warning("pac_not_fiscally_valid", pac=type(svc.pac).__name__,
                    detail="PAC is the offline TestDoublePac — stamps are NOT fiscally valid")
    try:
        from .from_billing import sweep_billing_invoices
        from .from_payments import cancel_reversed_complements, sweep_payment_complements

        while True:
            counts = worker_pass(svc, sweep_billing_invoices, sweep_payment_complements, cancel_reversed_complements)
            if counts:
                typer.echo(json.dumps(counts))
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()


@app.command("notify-worker")
def notify_worker(
    db: str = typer.Option(None, help="Cloud database URL.", envvar="AQUACIS_DB_URL"),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
    smtp_host: str = typer.Option("", help="SMTP server; empty: write to the sink file instead.",
                                  envvar="AQUACIS_SMTP_HOST"),
    smtp_port: int = typer.Option(25, help="SMTP port.", envvar="AQUACIS_SMTP_PORT"),
    smtp_user: str = typer.Option("", help="SMTP login user.", envvar="AQUACIS_SMTP_USER"),
    smtp_password: str = typer.Option("", help="SMTP login password.", envvar="AQUACIS_SMTP_PASSWORD"),
    smtp_starttls: bool = typer.Option(False, help="Use STARTTLS.", envvar="AQUACIS_SMTP_STARTTLS"),
    sender: str = typer.Option("avisos@localhost", help="From address.", envvar="AQUACIS_SMTP_FROM"),
    sink: str = typer.Option("notifications.jsonl", help="JSONL file of the local test sink.",
                             envvar="AQUACIS_NOTIFY_SINK"),
    interval: float = typer.Option(10.0, help="Seconds between passes.", envvar="AQUACIS_NOTIFY_INTERVAL"),
    once: bool = typer.Option(False, help="One pass, then exit."),
    log_level: str = typer.Option("info", envvar="AQUACIS_LOG_LEVEL", help="debug, info, warning or error."),
) -> None:
    """Send due notifications (e-mail over SMTP, or the local sink); failures retry with backoff."""
    from cloud.notifications.channels import SmtpChannel, TestSink
    from cloud.notifications.outbox import dispatch_due

    from .attachments import load_attachment

    configure_logging(log_level)
    engine = _engine(db, config)
    channels: dict = {"sink": TestSink(path=Path(sink))}  # type: ignore[type-arg]
    channels["email"] = (
        SmtpChannel(smtp_host, smtp_port, sender, username=smtp_user, password=smtp_password, starttls=smtp_starttls)
        if smtp_host else TestSink(name="email", path=Path(sink))
    )
    from cloud.notifications.from_events import sweep_events

    try:
        while True:
            try:
                sweep_events(engine)  # payments and cut-off decisions → notices
            except Exception as e:  # noqa: BLE001 - logged; sending what is queued goes on
                log.warning("notification_event_sweep_failed", error=str(e)[:300])
            counts = dispatch_due(engine, channels, attachment_loader=load_attachment)
            if any(counts.values()):
                typer.echo(json.dumps(counts))
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()


@app.command("global-invoice")
def global_invoice(
    municipality: str = typer.Option(..., help="Municipality (tenant), e.g. EXP-01."),
    year: int = typer.Option(..., help="Year of the period."),
    month: int = typer.Option(..., min=1, max=12, help="Month of the period (1-12)."),
    db: str = typer.Option(None, help="Cloud database URL.", envvar="AQUACIS_DB_URL"),
    config: str = typer.Option(None, "--config", envvar="AQUACIS_CONFIG", help=CONFIG_HELP),
) -> None:
    """Issue the month's global CFDI to público en general (receipts fully paid in the month)."""
    from .from_billing import issue_monthly_global
    from .wiring import service_from_settings

    engine = _engine(db, config)
    try:
        doc = issue_monthly_global(service_from_settings(engine), municipality, year, month)
    except ValueError as e:  # rule violations (CfdiRuleError, ValidationError) with their reason
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    finally:
        engine.dispose()
    typer.echo(json.dumps({"document_id": doc["id"], "fiscal_status": doc["fiscal_status"], "total": str(doc["total"])}
                          if doc else {"document_id": None, "reason": "no receipts to include"}))


@app.command("validate")
def validate_file(
    path: Path = typer.Argument(..., help="CFDI 4.0 XML file."),
    full: bool = typer.Option(False, help="Also validate with SAT's untouched XSD (slow: ~4 ms/doc)."),
) -> None:
    """Validate a CFDI against SAT's XSD and catalogs and verify its seal; exit 1 when invalid."""
    from lxml import etree

    from .validate import seal_errors, validator

    try:
        root = etree.fromstring(path.read_bytes())
    except (OSError, etree.XMLSyntaxError) as e:
        typer.echo(f"error: cannot read {path}: {e}", err=True)
        raise typer.Exit(2) from e
    errors = validator().check(root).errors
    if full:
        errors += [f"full XSD: {e}" for e in validator(full=True).check(root).errors]
    errors += seal_errors(root) if root.get("Sello") else ["document is not sealed"]
    typer.echo(json.dumps({"file": str(path), "valid": not errors, "errors": errors}, ensure_ascii=False))
    if errors:
        raise typer.Exit(1)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="cfdi", help="CFDI 4.0: stamping worker, validation, notifications.")
