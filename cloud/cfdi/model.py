"""Plain data the CFDI builder consumes: our invoice, not SAT's document.

The billing engine (or anyone) fills these; `cloud.cfdi.build` turns them into CFDI 4.0.
Money and quantities are Decimal; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

PUBLIC_RFC = "XAXX010101000"  # RFC genérico nacional: público en general (Anexo 20, guía de llenado)
PUBLIC_NAME = "PUBLICO EN GENERAL"
FOREIGN_RFC = "XEXX010101000"


class VatTreatment(StrEnum):
    """How IVA applies to one line; decides ObjetoImp and the Traslado node."""

    RATE_0 = "rate_0"  # objeto de IVA, tasa 0% (LIVA art. 2-A fr. II inciso h: agua para uso doméstico)
    RATE_16 = "rate_16"  # objeto de IVA, tasa general 16% (LIVA art. 1)
    EXEMPT = "exempt"  # objeto de IVA, exento (LIVA art. 15): TipoFactor Exento, no rate or amount
    NOT_OBJECT = "not_object"  # ObjetoImp 01: outside IVA (e.g. late-payment surcharges on public-law fees)


class LineKind(StrEnum):
    """Charge concepts the water utility bills; `vat_for` maps them to VAT by use type."""

    WATER = "water"  # suministro de agua
    SEWERAGE = "sewerage"  # alcantarillado / drenaje
    SANITATION = "sanitation"  # saneamiento (tratamiento de aguas residuales)
    FIXED = "fixed"  # cargo fijo / servicio
    RECONNECTION = "reconnection"
    OTHER = "other"


class UseType(StrEnum):
    DOMESTIC = "domestic"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"
    PUBLIC = "public"


@dataclass(frozen=True)
class Issuer:
    rfc: str
    name: str
    regime: str  # c_RegimenFiscal, e.g. "603" for a public water body organised as non-profit
    postal_code: str  # LugarExpedicion (c_CodigoPostal)


@dataclass(frozen=True)
class TaxData:
    """A receiver's fiscal data as registered in their Constancia de Situación Fiscal."""

    rfc: str
    name: str
    regime: str  # c_RegimenFiscal
    postal_code: str  # DomicilioFiscalReceptor
    cfdi_use: str = "G03"  # c_UsoCFDI; G03 gastos en general


@dataclass(frozen=True)
class Receiver:
    customer_id: str
    display_name: str
    tax: TaxData | None = None  # None: the invoice goes into the global invoice to público en general
    email: str | None = None


@dataclass(frozen=True)
class Line:
    concept: str  # description shown on the CFDI (Spanish)
    product_key: str  # c_ClaveProdServ
    unit_key: str  # c_ClaveUnidad
    quantity: Decimal
    unit_price: Decimal
    vat: VatTreatment
    kind: LineKind = LineKind.OTHER
    unit_name: str | None = None
    discount: Decimal | None = None


@dataclass(frozen=True)
class Invoice:
    """One of our invoices as the CFDI layer sees it."""

    invoice_id: str
    series: str
    folio: str
    issued_at: datetime  # naive local time at the issuing place (America/Mexico_City for Querétaro)
    issuer: Issuer
    receiver: Receiver
    lines: tuple[Line, ...]
    paid_in_full_at_issue: bool = False  # PUE only when settled at (or before) issuance
    payment_form: str | None = None  # c_FormaPago of the settling payment when PUE
    currency: str = "MXN"
    related: tuple[Related, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Related:
    """A CfdiRelacionados entry: c_TipoRelacion and the UUIDs it points to."""

    relation: str  # "01" nota de crédito, "04" sustitución, "07" anticipo, ...
    uuids: tuple[str, ...]


@dataclass(frozen=True)
class GlobalPeriod:
    """InformacionGlobal: c_Periodicidad, c_Meses, Año."""

    periodicity: str  # "01" diario, "02" semanal, "03" quincenal, "04" mensual, "05" bimestral
    months: str  # "01".."12", or "13".."18" for bimestral periods
    year: int


@dataclass(frozen=True)
class PaidDocument:
    """One PPD invoice a payment settles (partly), for the Pagos 2.0 DoctoRelacionado."""

    stamped_xml: bytes  # the stamped CFDI of the PPD invoice
    installment: int  # NumParcialidad
    previous_balance: Decimal  # ImpSaldoAnt
    amount: Decimal  # ImpPagado


@dataclass(frozen=True)
class PaymentInfo:
    payment_id: str
    paid_at: datetime  # FechaPago (local)
    form: str  # c_FormaPago: 01 efectivo, 03 transferencia, 04 tarjeta de crédito, 28 débito
    documents: tuple[PaidDocument, ...]
    series: str = "P"
    folio: str | None = None
    issued_at: datetime | None = None
