"""Cancellation of stamped CFDIs as a workflow, driven by the stamp worker.

    request_cancellation()           → cancel_state `requested`, fiscal_status `cancel_requested`
    worker: PAC cancel               → `cancelled` (final), or `awaiting_acceptance` when SAT asks
                                       the receiver (rules.needs_receiver_acceptance)
    worker: poll the PAC             → `cancelled`, or `rejected` (the receiver said no: the
                                       document stays stamped and live)
    PAC refuses the request          → `failed` with the reason in `last_error` (stays stamped)
    PAC unreachable                  → stays `requested`/`awaiting_acceptance`, retried with backoff

A request is only a row update, so callers (reversals, corrections, the API) make it inside
their own transaction; the PAC is called later by the worker, outside any transaction, one
document at a time: a failure is recorded on that document and the sweep goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.events.log import record_event
from sync.logs import get_logger

from .pac import CancelResult, PacRejected, PacUnavailable
from .rules import CfdiRuleError, check_cancellation
from .tables import CANCEL_OPEN, cfdi_documents

log = get_logger("cloud.cfdi.cancellation")
LEASE = timedelta(seconds=120)
WAIT_FOR_SUBSTITUTE = "waiting for the substitute CFDI to be stamped"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _event(conn: Connection, type_: str, doc: dict[str, Any], data: dict[str, Any], at: datetime) -> None:
    record_event(conn, type_, "cfdi", doc["id"], None, {
        "uuid": doc["uuid"], "kind": doc["kind"], "invoice_id": doc["invoice_id"], "source_id": doc["source_id"],
        "municipality": doc["municipality"], **data,
    }, municipality=doc["municipality"], at=at)


def _load(conn: Connection, doc_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(cfdi_documents).where(cfdi_documents.c.id == doc_id)
    row = conn.execute(q.with_for_update() if lock else q).mappings().first()
    return dict(row) if row else None


def request_cancellation(
    db: Connection | Engine,
    cfdi_id: str,
    motive: str,
    substitute_uuid: str | None = None,
    *,
    substitute_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Ask for a stamped CFDI to be cancelled; the stamp worker does the rest. Returns the row.

    Motive 01 names the substitute by UUID, or by our document id (`substitute_id`) while the
    substitute is still being stamped: the request goes to the PAC once it has its UUID.
    Idempotent: the same request again returns the row; a cancelled document is returned as
    is. Raises CfdiRuleError for what SAT would refuse (not stamped, wrong motive).
    """
    if isinstance(db, Engine):
        with db.begin() as conn:
            return request_cancellation(conn, cfdi_id, motive, substitute_uuid, substitute_id=substitute_id, now=now)
    conn = db
    now = now or datetime.now(UTC)
    doc = _load(conn, cfdi_id, lock=True)
    if doc is None:
        raise CfdiRuleError(f"CFDI document {cfdi_id} not found")
    if doc["fiscal_status"] == "cancelled":
        return doc
    if doc["cancel_state"] in CANCEL_OPEN:
        if doc["cancel_motive"] == motive and (substitute_uuid or None) in (None, doc["substitute_uuid"]) and (
                substitute_id or None) in (None, doc["substitute_document_id"]):
            return doc
        raise CfdiRuleError(f"a cancellation with motive {doc['cancel_motive']} is already under way for this CFDI")
    if doc["fiscal_status"] != "stamped" or not doc["uuid"]:
        raise CfdiRuleError(f"only a stamped CFDI can be cancelled (this one is {doc['fiscal_status']})")
    if motive == "04" and doc["kind"] != "global":
        raise CfdiRuleError("motive 04 applies to a global invoice (a sale now invoiced nominatively)")
    if substitute_id is not None:
        if motive != "01":
            raise CfdiRuleError(f"a substitute is only allowed with motive 01, not {motive}")
        sub = _load(conn, substitute_id)
        if sub is None or sub["municipality"] != doc["municipality"]:
            raise CfdiRuleError(f"substitute CFDI document {substitute_id} not found")
        if sub["id"] == doc["id"]:
            raise CfdiRuleError("a CFDI cannot substitute itself")
        if sub["fiscal_status"] in ("rejected", "cancelled"):
            raise CfdiRuleError(f"the substitute CFDI is {sub['fiscal_status']}")
        substitute_uuid = sub["uuid"] or None
        check_cancellation(motive, substitute_uuid or "pending")
    else:
        check_cancellation(motive, substitute_uuid)
    if substitute_uuid and substitute_uuid.upper() == doc["uuid"].upper():
        raise CfdiRuleError("a CFDI cannot substitute itself")
    values = {
        "fiscal_status": "cancel_requested", "cancel_state": "requested", "cancel_motive": motive,
        "substitute_uuid": substitute_uuid.upper() if substitute_uuid else None,
        "substitute_document_id": substitute_id, "cancel_requested_at": now, "cancel_attempts": 0,
        "cancel_next_attempt_at": now, "last_error": None,
    }
    conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == cfdi_id).values(**values))
    doc.update(values)
    _event(conn, "CFDICancellationRequested", doc, {"motive": motive, "substitute_uuid": values["substitute_uuid"],
                                                    "substitute_document_id": substitute_id}, now)
    log.info("cfdi_cancellation_requested", cfdi_id=cfdi_id, motive=motive)
    return doc


class CancellationWorker:
    """Sends requested cancellations to the PAC and polls those awaiting the receiver."""

    def __init__(self, svc: Any, *, poll_s: float = 900.0) -> None:
        self.svc = svc
        self.poll = timedelta(seconds=poll_s)

    @property
    def engine(self) -> Engine:
        return self.svc.engine  # type: ignore[no-any-return]

    def _now(self) -> datetime:
        return _aware(self.svc.clock()) or datetime.now(UTC)

    def due(self, limit: int) -> list[str]:
        now = self._now()
        with self.engine.connect() as conn:
            return list(conn.execute(
                sa.select(cfdi_documents.c.id)
                .where(cfdi_documents.c.cancel_state.in_(CANCEL_OPEN), cfdi_documents.c.cancel_next_attempt_at <= now)
                .order_by(cfdi_documents.c.cancel_next_attempt_at, cfdi_documents.c.id).limit(limit)
            ).scalars())

    def run(self, limit: int = 100) -> dict[str, int]:
        """One sweep. Each document on its own: one failure never stops the others."""
        counts: dict[str, int] = {}
        for doc_id in self.due(limit):
            try:
                outcome = self.process(doc_id)
            except Exception as e:  # noqa: BLE001 - recorded on the document, retried later
                log.exception("cfdi_cancellation_step_failed", cfdi_id=doc_id)
                self._retry_later(doc_id, f"{type(e).__name__}: {e}")
                outcome = "cancel_error"
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _claim(self, doc_id: str, now: datetime) -> dict[str, Any] | None:
        with self.engine.begin() as conn:
            res = conn.execute(cfdi_documents.update().where(
                cfdi_documents.c.id == doc_id, cfdi_documents.c.cancel_state.in_(CANCEL_OPEN),
                sa.or_(cfdi_documents.c.claimed_until.is_(None), cfdi_documents.c.claimed_until < now),
            ).values(claimed_until=now + LEASE))
            return _load(conn, doc_id) if res.rowcount == 1 else None

    def _update(self, doc_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc_id).values(claimed_until=None, **values))

    def _retry_later(self, doc_id: str, reason: str) -> None:
        now = self._now()
        with self.engine.begin() as conn:
            doc = _load(conn, doc_id)
            if doc is None or doc["cancel_state"] not in CANCEL_OPEN:
                return
            attempts = doc["cancel_attempts"] + 1
            conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc_id).values(
                cancel_attempts=attempts, cancel_next_attempt_at=now + self.svc.backoff(attempts),
                last_error=reason[:2000], claimed_until=None,
            ))

    def process(self, doc_id: str) -> str:
        """Advance one document's cancellation; returns what happened."""
        now = self._now()
        doc = self._claim(doc_id, now)
        if doc is None:
            return "busy"
        try:
            if doc["cancel_state"] == "requested":
                if doc["cancel_motive"] == "01" and not doc["substitute_uuid"]:
                    sub_uuid = self._substitute_uuid(doc)
                    if sub_uuid is None:
                        self._update(doc_id, last_error=WAIT_FOR_SUBSTITUTE,
                                     cancel_next_attempt_at=now + self.svc.backoff(1))
                        return "waiting_substitute"
                    doc["substitute_uuid"] = sub_uuid
                    self._update(doc_id, substitute_uuid=sub_uuid)
                result = self.svc.pac.cancel(doc["uuid"], doc["cancel_motive"], doc["substitute_uuid"],
                                             stamped_xml=doc["stamped_xml"])
            else:
                result = self.svc.pac.cancel_status(doc["uuid"], stamped_xml=doc["stamped_xml"])
        except PacUnavailable as e:
            self._retry_later(doc_id, f"PAC unavailable: {e}")
            log.warning("cfdi_cancellation_pac_unavailable", cfdi_id=doc_id, error=str(e)[:300])
            return "cancel_retry"
        except (PacRejected, CfdiRuleError) as e:
            self._finish(doc, "failed", now, reason=str(e))
            return "cancel_failed"
        return self._apply(doc, result, now)

    def _substitute_uuid(self, doc: dict[str, Any]) -> str | None:
        with self.engine.connect() as conn:
            sub = _load(conn, doc["substitute_document_id"]) if doc["substitute_document_id"] else None
        if sub is None:
            raise CfdiRuleError("motive 01 without a substitute CFDI")
        if sub["fiscal_status"] in ("rejected", "cancelled"):
            raise CfdiRuleError(f"the substitute CFDI was {sub['fiscal_status']}: {sub['last_error'] or ''}".strip())
        return str(sub["uuid"]) if sub["uuid"] else None

    def _apply(self, doc: dict[str, Any], result: CancelResult, now: datetime) -> str:
        if result.status == "cancelled":
            self._finish(doc, "cancelled", now, ack=result.acknowledgment)
            return "cancelled"
        if result.status == "rejected":
            self._finish(doc, "rejected", now, reason=result.reason or "the receiver rejected the cancellation")
            return "cancel_rejected"
        first = doc["cancel_state"] == "requested"
        self._update(doc["id"], cancel_state="awaiting_acceptance", cancel_next_attempt_at=now + self.poll,
                     last_error=None)
        if first:
            with self.engine.begin() as conn:
                _event(conn, "CFDICancellationAwaitingAcceptance", doc, {"motive": doc["cancel_motive"]}, now)
        return "awaiting_acceptance"

    def _finish(self, doc: dict[str, Any], state: str, now: datetime, *, reason: str | None = None,
                ack: bytes | None = None) -> None:
        values: dict[str, Any] = {"cancel_state": state, "cancel_next_attempt_at": None, "claimed_until": None}
        if state == "cancelled":
            values.update(fiscal_status="cancelled", cancelled_at=now, cancel_ack=ack, last_error=None)
            event, data = "CFDICancelled", {"motive": doc["cancel_motive"], "substitute_uuid": doc["substitute_uuid"],
                                            "status": "cancelled"}
        else:
            # Refused: the document was never cancelled and stays live; the reason is kept.
            values.update(fiscal_status="stamped", last_error=f"cancellation {state}: {reason}"[:2000])
            event = "CFDICancellationRejected" if state == "rejected" else "CFDICancellationFailed"
            data = {"motive": doc["cancel_motive"], "reason": reason}
            log.error("cfdi_cancellation_ended", cfdi_id=doc["id"], state=state, reason=reason)
        with self.engine.begin() as conn:
            conn.execute(cfdi_documents.update().where(cfdi_documents.c.id == doc["id"]).values(**values))
            _event(conn, event, doc, data, now)
