"""Cancellation: block a person's data now, anonymise it once legal retention ends.

Blocking (LGPDPPP art. 3 III, 25): the data is kept only for the duties that outlive the
relation (fiscal: CFF art. 30, five years from the last CFDI) and is no longer used to contact
the person (cloud/privacy/consent.py). Once `retain_until` has passed, `anonymise_due` clears
it: the customer's name becomes a placeholder, RFC, e-mail, phone and fiscal zip are removed,
the service point's copies of personal fields and access notes are cleared (through sync, so
the field loses them too), notices keep their kind and date but no address or text.
The CFDI documents themselves (XML with the receiver's RFC and name) are fiscal records and
survive: they are not the suite's to rewrite.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.auth import Principal
from cloud.errors import Conflict
from cloud.events import record_event
from sync.logs import get_logger

from .tables import blocks

MX = ZoneInfo("America/Mexico_City")
PLACEHOLDER_NAME = "TITULAR ANONIMIZADO"
log = get_logger("cloud.privacy")


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def is_anonymised(conn: Connection, customer_id: str) -> bool:
    return conn.execute(sa.select(blocks.c.anonymised_at).where(blocks.c.customer_id == customer_id)).scalar() \
        is not None


def retain_until(conn: Connection, customer_id: str, at: datetime, retention_years: int) -> date:
    """Five (configurable) years after the person's last fiscal document, or after today."""
    from cloud.billing.tables import invoices
    from cloud.cfdi.tables import cfdi_documents
    from cloud.payments.tables import payments
    from cloud.registry.tables import contracts

    mine = sa.select(contracts.c.id).where(contracts.c.customer_id == customer_id).scalar_subquery()
    inv_ids = sa.select(invoices.c.id).where(invoices.c.contract_id.in_(mine)).scalar_subquery()
    pay_ids = sa.select(payments.c.id).where(payments.c.contract_id.in_(mine)).scalar_subquery()
    last = conn.execute(sa.select(sa.func.max(cfdi_documents.c.created_at)).where(sa.or_(
        cfdi_documents.c.invoice_id.in_(inv_ids), cfdi_documents.c.source_id.in_(pay_ids)))).scalar()
    last_invoice = conn.execute(sa.select(sa.func.max(invoices.c.issue_date))
                                .where(invoices.c.contract_id.in_(mine))).scalar()
    start = at.astimezone(MX).date()
    if last is not None:
        start = max(start, (last if last.tzinfo else last.replace(tzinfo=MX)).astimezone(MX).date())
    if last_invoice is not None:
        start = max(start, last_invoice)
    return _years_after(start, retention_years)


def block(conn: Connection, principal: Principal | None, customer_id: str, at: datetime, *,
          request_id: str | None, retention_years: int = 5) -> date:
    """Block the person's data (their contracts must have ended: data a contract in force needs
    cannot be cancelled, art. 26 I); returns the day anonymisation becomes due."""
    from cloud.registry.tables import contracts, customers

    muni = conn.execute(sa.select(customers.c.municipality).where(customers.c.id == customer_id)).scalar()
    live = conn.execute(sa.select(contracts.c.id).where(contracts.c.customer_id == customer_id,
                                                       contracts.c.status != "terminated")).scalars().all()
    if live:
        raise Conflict(f"contracts in force need the data: {', '.join(live)}; terminate them first "
                       "or reject the request (LGPDPPP art. 26 I)")
    if conn.execute(sa.select(blocks.c.customer_id).where(blocks.c.customer_id == customer_id)).first():
        raise Conflict("the customer's data is already blocked")
    until = retain_until(conn, customer_id, at, retention_years)
    conn.execute(blocks.insert().values(customer_id=customer_id, municipality=muni, request_id=request_id,
                                        blocked_at=at, retain_until=until))
    record_event(conn, "CustomerDataBlocked", "customer", customer_id, principal,
                 {"retain_until": until.isoformat(), "request_id": request_id}, municipality=muni, at=at)
    return until


def anonymise(conn: Connection, customer_id: str, at: datetime) -> dict[str, int]:
    from cloud.cfdi.tables import cfdi_documents
    from cloud.notifications.tables import notifications
    from cloud.registry import replicated
    from cloud.registry.tables import contracts, customers

    cust = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).mappings().one()
    conn.execute(customers.update().where(customers.c.id == customer_id).values(
        name=PLACEHOLDER_NAME, tax_id=None, email=None, phone=None, fiscal_zip=None))
    sp = replicated.table("service_points")
    sp_ids = conn.execute(sa.select(contracts.c.service_point_id).where(contracts.c.customer_id == customer_id)
                          ).scalars().all()
    if sp_ids:
        replicated.write_rows(conn, "service_points", [
            {"id": s, "customer_name": None, "customer_phone": None, "customer_email": None, "tax_id": None,
             "access_notes": None} for s in sp_ids
            if conn.execute(sa.select(sp.c.id).where(sp.c.id == s)).first() is not None], None)
    mine: Any = notifications.c.customer_id == customer_id
    if cust["email"]:
        mine = sa.or_(mine, notifications.c.recipient == cust["email"])
    notices = conn.execute(notifications.update().where(mine).values(
        recipient="anonimizado", subject="", body="", attachments=None, last_error=None)).rowcount
    from cloud.billing.tables import invoices

    inv_ids = sa.select(invoices.c.id).join(contracts, contracts.c.id == invoices.c.contract_id).where(
        contracts.c.customer_id == customer_id).scalar_subquery()
    conn.execute(cfdi_documents.update().where(cfdi_documents.c.invoice_id.in_(inv_ids)).values(receiver_email=None))
    conn.execute(blocks.update().where(blocks.c.customer_id == customer_id).values(anonymised_at=at))
    record_event(conn, "CustomerAnonymised", "customer", customer_id, None, {}, municipality=cust["municipality"],
                 at=at)
    return {"service_points": len(sp_ids), "notifications": notices}


def anonymise_due(conn: Connection, at: datetime, *, limit: int = 500) -> list[str]:
    """Anonymise every blocked person whose retention ended before today (Mexico City)."""
    today = at.astimezone(MX).date()
    due = conn.execute(sa.select(blocks.c.customer_id).where(blocks.c.anonymised_at.is_(None),
                                                            blocks.c.retain_until < today)
                       .order_by(blocks.c.retain_until).limit(limit)).scalars().all()
    for cid in due:
        anonymise(conn, cid, at)
        log.info("customer_anonymised", customer_id=cid)
    return list(due)
