"""Which global CFDI currently declares a receipt (its live membership).

A receipt of a customer without tax data enters the global CFDI of the month in which it is
fully paid. It leaves it by a withdrawal: an Egreso to público en general related (01) to that
global, for the whole receipt, when the receipt is voided, corrected, or no longer fully paid
(its payment was reversed). A withdrawn receipt that is paid again enters a later global; so a
receipt may be a member of several globals over its life, but of at most one not withdrawn.

Invariant: for every receipt, Σ its stamped globals − Σ its stamped withdrawals is its total
while it is live in a global, and 0 otherwise.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .tables import cfdi_documents, cfdi_global_members

WITHDRAWAL = "retiro-"  # source id prefix of a withdrawal Egreso


def withdrawal_id(invoice_id: str, global_document_id: str) -> str:
    """The withdrawal's source id: one per (receipt, global). Release 0.2.0 wrote
    `retiro-<invoice id>` (a receipt could then be in one global only); both are recognised."""
    return f"{WITHDRAWAL}{invoice_id}:{global_document_id}"


def withdrawn(member: Any = cfdi_global_members) -> sa.ColumnElement[bool]:
    """EXISTS a withdrawal of `member`'s receipt from `member`'s global."""
    g, w = cfdi_documents.alias("wd_global"), cfdi_documents.alias("wd_egreso")
    return sa.exists().where(
        g.c.id == member.c.document_id, w.c.kind == "egreso", w.c.related_uuid == g.c.uuid,
        sa.or_(w.c.source_id == sa.literal(WITHDRAWAL) + member.c.invoice_id,
               w.c.source_id == sa.literal(WITHDRAWAL) + member.c.invoice_id + sa.literal(":") + g.c.id))


def live_in_a_global(invoice_id: Any) -> sa.ColumnElement[bool]:
    """EXISTS a global that declares the receipt `invoice_id` and has not withdrawn it."""
    m = cfdi_global_members.alias("live_member")
    return sa.exists().where(m.c.invoice_id == invoice_id, ~withdrawn(m))
