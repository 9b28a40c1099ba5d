"""Opposition per contact purpose, and the check the notification outbox makes before queuing.

A person opposes a purpose (an ARCO opposition, or a choice in the portal); a blocked person
(cancellation) gets only what the utility must send by law or contract (purposes that are
not opposable: the invoice, account security).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .purposes import OPPOSABLE, opposable_purpose, purpose_of_notification
from .tables import blocks, oppositions


def opposed(conn: Connection, customer_id: str) -> set[str]:
    return set(conn.execute(sa.select(oppositions.c.purpose)
                            .where(oppositions.c.customer_id == customer_id)).scalars())


def set_oppositions(conn: Connection, customer_id: str, purposes: Iterable[str], at: datetime,
                    *, request_id: str | None = None) -> dict[str, list[str]]:
    """Make the person's oppositions exactly `purposes` (each opposable); returns what changed."""
    wanted = {opposable_purpose(p) for p in purposes}
    now = opposed(conn, customer_id)
    added, removed = sorted(wanted - now), sorted(now - wanted)
    if removed:
        conn.execute(oppositions.delete().where(oppositions.c.customer_id == customer_id,
                                                oppositions.c.purpose.in_(removed)))
    if added:
        conn.execute(oppositions.insert(), [{"customer_id": customer_id, "purpose": p, "at": at,
                                              "request_id": request_id} for p in added])
    return {"opposed": added, "withdrawn": removed}


def is_blocked(conn: Connection, customer_id: str) -> bool:
    return conn.execute(sa.select(blocks.c.customer_id).where(blocks.c.customer_id == customer_id)).first() is not None


def may_contact(conn: Connection, customer_id: str, kind: str) -> bool:
    """May a notice of `kind` go to this person? (KeyError for a kind without a purpose.)"""
    purpose = purpose_of_notification(kind)
    if purpose not in OPPOSABLE:
        return True
    if is_blocked(conn, customer_id):
        return False
    return conn.execute(sa.select(oppositions.c.customer_id).where(
        oppositions.c.customer_id == customer_id, oppositions.c.purpose == purpose)).first() is None


def customer_of_contract(conn: Connection, contract_id: str) -> str | None:
    from cloud.registry.tables import contracts

    return conn.execute(sa.select(contracts.c.customer_id).where(contracts.c.id == contract_id)).scalar()
