"""PAC interface, the offline test double, real PAC adapters, and the factory from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import CancelResult, Pac, PacError, PacRejected, PacUnavailable, StampResult
from .testdouble import TestDoublePac

if TYPE_CHECKING:
    from satcfdi.models import Signer
    from sqlalchemy.engine import Engine

    from ..settings import CfdiSettings

__all__ = [
    "CancelResult", "Pac", "PacError", "PacRejected", "PacUnavailable", "StampResult",
    "TestDoublePac", "make_pac",
]


def make_pac(settings: CfdiSettings, signer: Signer, engine: Engine) -> Pac:
    """The PAC named by AQUACIS_PAC_PROVIDER: `test` (default, offline, NOT fiscally valid) or a real one."""
    provider = settings.pac_provider.lower()
    if provider == "test":
        return TestDoublePac(engine)  # its state in our database: every worker sees every stamp
    from .real import SatcfdiPac

    cfg = {
        "user": settings.pac_user, "password": settings.pac_password, "token": settings.pac_token,
        "id": settings.pac_id, "rfc": settings.pac_rfc, "contract": settings.pac_contract,
    }
    return SatcfdiPac(provider, cfg, signer, production=settings.pac_production)
