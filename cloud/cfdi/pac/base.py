"""The PAC seam: stamp a sealed CFDI, cancel a stamped one.

A PAC (Proveedor Autorizado de Certificación) validates a sealed CFDI, adds SAT's
TimbreFiscalDigital (UUID, SelloSAT) and forwards it to SAT. Adapters translate their errors
into two kinds: `PacUnavailable` (network, timeouts, 5xx: retry later) and `PacRejected`
(the document or request is wrong: retrying the same thing cannot succeed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class PacError(Exception):
    pass


class PacUnavailable(PacError):
    """Transient: the PAC could not be reached or answered with a server error."""


class PacRejected(PacError):
    """Permanent for this document: the PAC refused it, with its reason."""


@dataclass(frozen=True)
class StampResult:
    uuid: str
    stamped_xml: bytes
    stamped_at: datetime
    pac_rfc: str
    fiscally_valid: bool  # False only for the offline test double


@dataclass(frozen=True)
class CancelResult:
    uuid: str
    status: str  # "cancelled" | "in_process" (receiver must accept) | "rejected"
    acknowledgment: bytes | None = None
    reason: str | None = None  # why it was rejected, when the PAC or SAT says


@runtime_checkable
class Pac(Protocol):
    name: str
    fiscally_valid: bool

    def stamp(self, sealed_xml: bytes) -> StampResult: ...

    def cancel(
        self, uuid: str, motive: str, substitute_uuid: str | None = None, *, stamped_xml: bytes | None = None
    ) -> CancelResult: ...

    def cancel_status(self, uuid: str, *, stamped_xml: bytes | None = None) -> CancelResult:
        """Where a cancellation awaiting the receiver's acceptance stands now (polled)."""
        ...
