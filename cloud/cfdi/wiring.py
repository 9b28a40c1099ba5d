"""Build the CFDI service from settings: the CSD (or a throwaway test one) and the PAC."""

from __future__ import annotations

from satcfdi.models import Signer
from sqlalchemy.engine import Engine

from sync.logs import get_logger

from .csd import load_signer, throwaway_signer
from .model import Issuer
from .pac import make_pac
from .service import CfdiService
from .settings import CfdiSettings

log = get_logger("cloud.cfdi")


def signer_from_settings(s: CfdiSettings) -> Signer:
    if s.cfdi_csd_cer and s.cfdi_csd_key:
        return load_signer(s.cfdi_csd_cer, s.cfdi_csd_key, s.cfdi_csd_password)
    log.warning("cfdi_test_certificate", reason="no CSD configured (AQUACIS_CFDI_CSD_CER/KEY): sealing with a throwaway TEST certificate")
    return throwaway_signer(s.cfdi_issuer_rfc, s.cfdi_issuer_name)


def issuer_from_settings(s: CfdiSettings, signer: Signer) -> Issuer:
    # With a real CSD the RFC must be the certificate's; the certificate wins over the setting.
    rfc = str(signer.rfc) if signer.rfc else s.cfdi_issuer_rfc
    return Issuer(rfc=rfc, name=s.cfdi_issuer_name, regime=s.cfdi_issuer_regime, postal_code=s.cfdi_issuer_postal_code)


def service_from_settings(engine: Engine, settings: CfdiSettings | None = None) -> CfdiService:
    s = settings or CfdiSettings()
    signer = signer_from_settings(s)
    return CfdiService(
        engine, make_pac(s, signer, engine), signer, issuer_from_settings(s, signer),
        retry_base_s=s.pac_retry_base_s, retry_max_s=s.pac_retry_max_s,
        cancel_poll_s=s.pac_cancel_poll_s,
    )
