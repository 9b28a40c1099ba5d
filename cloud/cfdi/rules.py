"""Fiscal rules of our CFDI: VAT by concept and use, ObjetoImp, UsoCFDI/régimen pairs.

Pure functions. The legal basis of each rule is in docs/cfdi.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.mx import rfc as mx_rfc

from cloud import errors

from .model import LineKind, UseType, VatTreatment


class CfdiRuleError(errors.Invalid, ValueError):
    """Input that would produce a CFDI SAT (or a PAC) rejects; the message says why."""


# Product/unit keys we use by default (c_ClaveProdServ / c_ClaveUnidad of SAT's catalogs).
PRODUCT_KEYS: dict[LineKind, str] = {
    LineKind.WATER: "83101501",  # Abastecimiento de agua
    LineKind.SEWERAGE: "83101500",  # Servicios de acueducto y alcantarillado
    LineKind.SANITATION: "76121701",  # Servicios de tratamiento de aguas negras
    LineKind.FIXED: "83101500",
    LineKind.RECONNECTION: "83101500",
    LineKind.OTHER: "83101500",
}
UNIT_KEYS: dict[LineKind, str] = {
    LineKind.WATER: "MTQ",  # metro cúbico
    LineKind.SEWERAGE: "E48",  # unidad de servicio
    LineKind.SANITATION: "E48",
    LineKind.FIXED: "E48",
    LineKind.RECONNECTION: "E48",
    LineKind.OTHER: "E48",
}


def vat_for(kind: LineKind, use: UseType) -> VatTreatment:
    """IVA of a charge: only water supplied for domestic use is 0%; everything else is 16%.

    LIVA art. 2-A fr. II inciso h) gives 0% to "suministro de agua para uso doméstico";
    sewerage, sanitation and any non-domestic supply fall under the general rate (art. 1).
    """
    if kind is LineKind.WATER and use is UseType.DOMESTIC:
        return VatTreatment.RATE_0
    return VatTreatment.RATE_16


VAT_RATE: dict[VatTreatment, Decimal] = {
    VatTreatment.RATE_0: Decimal("0.000000"),
    VatTreatment.RATE_16: Decimal("0.160000"),
}


def objeto_imp(vat: VatTreatment) -> str:
    """c_ObjetoImp: 0% and exempt lines are still "02 Sí objeto de impuesto" (not 01)."""
    return "01" if vat is VatTreatment.NOT_OBJECT else "02"


# c_UsoCFDI → régimen fiscal del receptor allowed (column "Régimen Fiscal Receptor" of SAT's
# catálogo c_UsoCFDI, Anexo 20 v4.0).
_BUSINESS = frozenset({"601", "603", "606", "612", "620", "621", "622", "623", "624", "625", "626"})
_DEDUCTIONS = frozenset({"605", "606", "607", "608", "611", "612", "614", "615", "625"})
_ANY = frozenset({
    "601", "603", "605", "606", "607", "608", "610", "611", "612", "614", "615", "616",
    "620", "621", "622", "623", "624", "625", "626",
})
USO_REGIMEN: dict[str, frozenset[str]] = {
    **{u: _BUSINESS for u in ("G01", "G02", "G03", "I01", "I02", "I03", "I04", "I05", "I06", "I07", "I08")},
    **{f"D{n:02d}": _DEDUCTIONS for n in range(1, 11)},
    "S01": _ANY,
    "CP01": _ANY,
    "CN01": frozenset({"605"}),
}
# Régimen by kind of taxpayer (c_RegimenFiscal columns Física / Moral).
_FISICA_ONLY = frozenset({"605", "606", "607", "608", "611", "612", "614", "615", "616", "621", "625"})
_MORAL_ONLY = frozenset({"601", "603", "620", "623", "624"})


def is_persona_moral(rfc: str) -> bool:
    return len(rfc) == 12  # RFC of a legal entity has 12 characters, of a person 13


def check_receiver(rfc: str, regime: str, use: str, postal_code: str) -> None:
    """Refuse a receiver SAT would reject (CFDI40157/40158/40161-style checks)."""
    if len(rfc) not in (12, 13):
        raise CfdiRuleError(f"RFC '{rfc}' must have 12 (moral) or 13 (física) characters")
    if rfc not in GENERIC_RFCS:
        try:
            mx_rfc.validate(rfc, validate_check_digits=True)
        except StdnumError as e:
            raise CfdiRuleError(f"RFC '{rfc}' is not valid for SAT: {rfc_problem(e)}") from e
    allowed = USO_REGIMEN.get(use)
    if allowed is None:
        raise CfdiRuleError(f"UsoCFDI '{use}' is not a CFDI 4.0 use we issue")
    if regime not in allowed:
        raise CfdiRuleError(f"UsoCFDI '{use}' is not allowed with régimen fiscal '{regime}'")
    moral = is_persona_moral(rfc)
    if moral and regime in _FISICA_ONLY:
        raise CfdiRuleError(f"régimen '{regime}' is for personas físicas but RFC '{rfc}' is a persona moral")
    if not moral and regime in _MORAL_ONLY:
        raise CfdiRuleError(f"régimen '{regime}' is for personas morales but RFC '{rfc}' is a persona física")
    if moral and use.startswith("D"):
        raise CfdiRuleError(f"UsoCFDI '{use}' (deducción personal) is only for personas físicas")
    if not (len(postal_code) == 5 and postal_code.isdigit()):
        raise CfdiRuleError(f"postal code '{postal_code}' must be 5 digits")
    if rfc in ("XAXX010101000", "XEXX010101000"):
        raise CfdiRuleError("generic RFCs go to the global invoice, not to a nominative one")


CANCEL_MOTIVES = {
    "01": "Comprobante emitido con errores con relación",
    "02": "Comprobante emitido con errores sin relación",
    "03": "No se llevó a cabo la operación",
    "04": "Operación nominativa relacionada en una factura global",
}


def check_cancellation(motive: str, substitute_uuid: str | None) -> None:
    """Motive 01 needs the UUID of the CFDI that replaces the cancelled one; others must not carry it."""
    if motive not in CANCEL_MOTIVES:
        raise CfdiRuleError(f"cancellation motive '{motive}' must be one of 01, 02, 03, 04")
    if motive == "01" and not substitute_uuid:
        raise CfdiRuleError("motive 01 requires the UUID of the substituting CFDI (FolioSustitucion)")
    if motive != "01" and substitute_uuid:
        raise CfdiRuleError(f"FolioSustitucion is only allowed with motive 01, not {motive}")


ACCEPTANCE_FREE_LIMIT = Decimal("1000.00")
ACCEPTANCE_FREE_WINDOW = timedelta(hours=24)
ACCEPTANCE_DEEMED_AFTER = timedelta(days=3)
GENERIC_RFCS = ("XAXX010101000", "XEXX010101000")


def needs_receiver_acceptance(
    tipo: str, total: Decimal, receiver_rfc: str, stamped_at: datetime, requested_at: datetime
) -> bool:
    """Whether SAT asks the receiver to accept a cancellation (RMF regla 2.7.1.35).

    Cancelled without acceptance: totals up to 1,000.00 MXN (a Pagos 2.0 CFDI has Total 0),
    Egreso, Traslado and Nómina documents, documents to público en general or foreigners
    (generic RFCs), and any document cancelled within 24 hours of its stamp. Otherwise the
    receiver has three days to answer in its buzón tributario; silence counts as acceptance.
    """
    if tipo in ("E", "T", "N", "P") or total <= ACCEPTANCE_FREE_LIMIT or receiver_rfc in GENERIC_RFCS:
        return False
    return requested_at - stamped_at > ACCEPTANCE_FREE_WINDOW


def tax_identity_errors(
    rfc: str | None, regime: str | None, use: str | None, postal_code: str | None
) -> list[tuple[str, str]]:
    """What SAT would refuse in a customer's tax data, as (field, reason); empty when fine.

    Checked when the customer is registered, so an invoice never waits on data that can never
    produce a CFDI. No RFC means público en general (the global invoice): régimen 616 and use
    S01 at most. An RFC must pass SAT's pattern, date and check digit (python-stdnum), must not
    be a generic RFC, and comes with a régimen and fiscal postal code that fit it.
    """
    errors: list[tuple[str, str]] = []
    if not rfc:
        if regime not in (None, "616"):
            errors.append(("tax_regime", f"régimen '{regime}' needs an RFC; without one the customer is público "
                                         "en general (616)"))
        if use not in (None, "S01"):
            errors.append(("cfdi_use", f"UsoCFDI '{use}' needs an RFC; público en general uses S01"))
        return errors
    if rfc in GENERIC_RFCS:
        return [("tax_id", f"{rfc} is the generic RFC of público en general / foreigners: leave tax_id empty "
                           "and the receipts go into the global invoice")]
    try:
        mx_rfc.validate(rfc, validate_check_digits=True)
    except StdnumError as e:
        errors.append(("tax_id", f"RFC '{rfc}' is not valid for SAT: {rfc_problem(e)}"))
    if len(rfc) not in (12, 13):
        return errors
    if regime is None:
        errors.append(("tax_regime", "an RFC needs its régimen fiscal (SAT c_RegimenFiscal)"))
    elif regime not in _ANY:
        errors.append(("tax_regime", f"'{regime}' is not a régimen of SAT's catalog c_RegimenFiscal"))
    elif is_persona_moral(rfc) and regime in _FISICA_ONLY:
        errors.append(("tax_regime", f"régimen '{regime}' is for personas físicas but the 12-character RFC "
                                     f"'{rfc}' is a persona moral"))
    elif not is_persona_moral(rfc) and regime in _MORAL_ONLY:
        errors.append(("tax_regime", f"régimen '{regime}' is for personas morales but the 13-character RFC "
                                     f"'{rfc}' is a persona física"))
    if postal_code is None:
        errors.append(("fiscal_zip", "an RFC needs the fiscal postal code of its Constancia de Situación Fiscal"))
    if use is not None:
        allowed = USO_REGIMEN.get(use)
        if allowed is None:
            errors.append(("cfdi_use", f"'{use}' is not a UsoCFDI of SAT's catalog c_UsoCFDI that we issue"))
        elif regime is not None and regime in _ANY and regime not in allowed:
            errors.append(("cfdi_use", f"UsoCFDI '{use}' is not allowed with régimen '{regime}'"))
        elif is_persona_moral(rfc) and use.startswith("D"):
            errors.append(("cfdi_use", f"UsoCFDI '{use}' (deducción personal) is only for personas físicas"))
    return errors


def rfc_problem(e: Exception) -> str:
    """python-stdnum's exception in words a clerk can act on."""
    if isinstance(e, InvalidChecksum):
        return "its check digit (last character) is wrong"
    if isinstance(e, InvalidComponent):
        return "its date (YYMMDD) does not exist, or its name part or homoclave is not allowed"
    if isinstance(e, InvalidFormat):
        return "it does not follow SAT's pattern (3-4 letters, 6 digits, 3 characters)"
    if isinstance(e, InvalidLength):
        return "it must have 12 (persona moral) or 13 (persona física) characters"
    return str(e)


def default_use(regime: str) -> str:
    """G03 (gastos en general) when the régimen allows it, else S01 (sin efectos fiscales)."""
    return "G03" if regime in USO_REGIMEN["G03"] else "S01"
