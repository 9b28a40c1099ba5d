"""Prometheus view of the fiscal documents, read from the database at scrape time.

The stamp worker runs in its own processes, so its counters would be invisible to the API's
/metrics; the documents' states in the database are the truth every process shares.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from sync.logs import get_logger

from .tables import cfdi_blocked_invoices, cfdi_documents, cfdi_payment_waits

log = get_logger("cloud.cfdi.metrics")


#: states of a document still in flight or needing a person (ranges of ix_cfdi_documents_due and
#: ix_cfdi_documents_cancel_due); stamped, cancelled and voided documents are at rest
UNSETTLED_FISCAL = ("pending_fiscal", "rejected", "cancel_requested")
UNSETTLED_CANCEL = ("requested", "awaiting_acceptance", "rejected", "failed")


class CfdiCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        docs = GaugeMetricFamily(
            "aquacis_cfdi_documents",
            "CFDI documents not at rest (pending, rejected, cancellation open or refused) by kind and state",
            labels=["municipality", "kind", "fiscal_status", "cancel_state"])
        failing = GaugeMetricFamily(
            "aquacis_cfdi_documents_with_error", "CFDI documents whose last attempt left an error (last_error)",
            labels=["municipality", "kind", "fiscal_status"])
        blocked = GaugeMetricFamily(
            "aquacis_cfdi_blocked_invoices", "Billing invoices that cannot get a CFDI (see GET /api/v2/cfdi/blocked)",
            labels=["municipality"])
        waits = GaugeMetricFamily(
            "aquacis_cfdi_payments_waiting", "Payments whose Pagos 2.0 complement cannot be issued yet",
            labels=["municipality"])
        c = cfdi_documents.c
        from cloud.row_security import system_scope

        try:
            # A scrape is system work over every municipality, not a tenant's request.
            with system_scope("metrics"), self.engine.connect() as conn:
                # Documents not at rest only: the stamped, cancelled and voided millions would
                # make every scrape a full scan; these states are ranges of the two indexes.
                unsettled = sa.or_(c.fiscal_status.in_(UNSETTLED_FISCAL), c.cancel_state.in_(UNSETTLED_CANCEL))
                for m, kind, status, cancel, n in conn.execute(
                    sa.select(c.municipality, c.kind, c.fiscal_status, c.cancel_state, sa.func.count())
                    .where(unsettled).group_by(c.municipality, c.kind, c.fiscal_status, c.cancel_state)
                ):
                    docs.add_metric([m, kind, status, cancel or ""], n)
                for m, kind, status, n in conn.execute(
                    sa.select(c.municipality, c.kind, c.fiscal_status, sa.func.count())
                    .where(unsettled, c.last_error.is_not(None)).group_by(c.municipality, c.kind, c.fiscal_status)
                ):
                    failing.add_metric([m, kind, status], n)
                b = cfdi_blocked_invoices.c
                for m, n in conn.execute(sa.select(b.municipality, sa.func.count()).group_by(b.municipality)):
                    blocked.add_metric([m], n)
                pw = cfdi_payment_waits.c
                for m, n in conn.execute(sa.select(pw.municipality, sa.func.count()).group_by(pw.municipality)):
                    waits.add_metric([m], n)
        except sa.exc.SQLAlchemyError as e:  # a scrape must answer even when the database does not
            log.warning("cfdi_metrics_unavailable", error=str(e)[:300])
        yield docs
        yield failing
        yield blocked
        yield waits
