"""Adapters for real PACs through satcfdi's integrations (Finkok, Diverza, Prodigia, SW Sapien).

They need credentials and the network, so they cannot be exercised offline: nothing in the
test suite calls them beyond construction. Transport failures become `PacUnavailable`,
answers refusing the document become `PacRejected`.
"""

from __future__ import annotations

from typing import Any

from satcfdi.cfdi import CFDI
from satcfdi.exceptions import ResponseError
from satcfdi.models import Signer
from satcfdi.pacs import CancelReason, Environment

from .base import CancelResult, PacRejected, PacUnavailable, StampResult

PROVIDERS = ("finkok", "diverza", "prodigia", "swsapien")


def _make(provider: str, env: Environment, cfg: dict[str, str]) -> Any:
    if provider == "finkok":
        from satcfdi.pacs.finkok import Finkok

        return Finkok(username=cfg["user"], password=cfg["password"], environment=env)
    if provider == "diverza":
        from satcfdi.pacs.diverza import Diverza

        return Diverza(rfc=cfg["rfc"], id=cfg["id"], token=cfg["token"], environment=env)
    if provider == "prodigia":
        from satcfdi.pacs.prodigia import Prodigia

        return Prodigia(user=cfg["user"], password=cfg["password"], contrato=cfg["contract"], environment=env)
    if provider == "swsapien":
        from satcfdi.pacs.swsapien import SWSapien

        return SWSapien(
            token=cfg.get("token") or None, user=cfg.get("user") or None,
            password=cfg.get("password") or None, environment=env,
        )
    raise ValueError(f"unknown PAC provider '{provider}' (choose one of {', '.join(PROVIDERS)} or test)")


class SatcfdiPac:
    fiscally_valid = True

    def __init__(self, provider: str, cfg: dict[str, str], signer: Signer, production: bool = False) -> None:
        missing = [k for k in _required(provider) if not cfg.get(k)]
        if missing:
            raise ValueError(
                f"PAC {provider} needs " + ", ".join(f"AQUACIS_PAC_{k.upper()}" for k in missing)
            )
        self.name = provider
        self.signer = signer
        self.production = production
        self.client = _make(provider, Environment.PRODUCTION if production else Environment.TEST, cfg)

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        import requests

        try:
            return fn(*args, **kw)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise PacUnavailable(f"{self.name}: {e}") from e
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            if status >= 500 or status == 429:
                raise PacUnavailable(f"{self.name}: HTTP {status}") from e
            raise PacRejected(f"{self.name}: HTTP {status}") from e
        except ResponseError as e:
            raise PacRejected(f"{self.name}: {e}") from e

    def stamp(self, sealed_xml: bytes) -> StampResult:
        from datetime import datetime

        doc = self._call(self.client.stamp, CFDI.from_string(sealed_xml))
        stamped = CFDI.from_string(doc.xml)
        tfd = stamped["Complemento"]["TimbreFiscalDigital"]
        fecha = tfd["FechaTimbrado"]
        return StampResult(
            uuid=str(tfd["UUID"]).upper(),
            stamped_xml=doc.xml,
            stamped_at=fecha if isinstance(fecha, datetime) else datetime.fromisoformat(str(fecha)),
            pac_rfc=str(tfd["RfcProvCertif"]),
            fiscally_valid=True,
        )

    def cancel(
        self, uuid: str, motive: str, substitute_uuid: str | None = None, *, stamped_xml: bytes | None = None
    ) -> CancelResult:
        if stamped_xml is None:
            raise PacRejected("a real PAC cancellation needs the stamped XML")
        ack = self._call(
            self.client.cancel,
            CFDI.from_string(stamped_xml), CancelReason(motive), substitute_uuid, self.signer,
        )
        return CancelResult(uuid=uuid, status="in_process" if ack.acuse is None else "cancelled", acknowledgment=ack.acuse)

    def cancel_status(self, uuid: str, *, stamped_xml: bytes | None = None) -> CancelResult:
        """SAT's public status service (the QR query): Estado / EstatusCancelacion of the UUID."""
        from satcfdi.pacs.sat import SAT

        if stamped_xml is None:
            raise PacRejected("the cancellation status query needs the stamped XML")
        env = Environment.PRODUCTION if self.production else Environment.TEST
        answer = self._call(SAT(signer=self.signer, environment=env).status, CFDI.from_string(stamped_xml))
        estado = str(answer.get("Estado") or "")
        cancelacion = str(answer.get("EstatusCancelacion") or "")
        if estado == "Cancelado":
            return CancelResult(uuid=uuid, status="cancelled")
        if "rechaz" in cancelacion.lower():
            return CancelResult(uuid=uuid, status="rejected", reason=f"SAT: {cancelacion}")
        return CancelResult(uuid=uuid, status="in_process")


def _required(provider: str) -> tuple[str, ...]:
    return {
        "finkok": ("user", "password"),
        "diverza": ("rfc", "id", "token"),
        "prodigia": ("user", "password", "contract"),
        "swsapien": (),
    }.get(provider, ())
