"""Load a notification's attachment (a CFDI's XML or PDF) from the cfdi_documents table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.notifications.channels import Attachment

from .tables import cfdi_documents


def load_attachment(conn: Connection, spec: dict[str, Any]) -> Attachment | None:
    source = spec.get("source")
    if source not in ("cfdi_xml", "cfdi_pdf"):
        return None
    row = conn.execute(
        sa.select(cfdi_documents.c.stamped_xml, cfdi_documents.c.pdf).where(cfdi_documents.c.id == spec.get("document_id"))
    ).first()
    if row is None:
        return None
    data = row.stamped_xml if source == "cfdi_xml" else row.pdf
    if data is None:
        return None
    return Attachment(spec.get("name", "cfdi"), spec.get("content_type", "application/octet-stream"), data)
