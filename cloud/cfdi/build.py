"""Turn our invoices, payments and corrections into CFDI 4.0 documents (pure, no I/O).

Every builder returns an unsealed `satcfdi` Comprobante; `cloud.cfdi.seal.seal` signs it.
The mapping and its legal basis are documented in docs/cfdi.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import cache

import satcfdi.create.compute as _sat_compute
from satcfdi.cfdi import CFDI
from satcfdi.create.cfd import cfdi40

from .model import (
    PUBLIC_NAME,
    PUBLIC_RFC,
    GlobalPeriod,
    Invoice,
    Issuer,
    Line,
    PaymentInfo,
    Related,
    TaxData,
    VatTreatment,
)
from .rules import VAT_RATE, CfdiRuleError, check_cancellation, check_receiver, objeto_imp

TWO = Decimal("0.01")

# satcfdi looks the currency's decimals up in its SQLite catalog on every document; the
# catalog is constant, so remember the answers (a measurable share of issuance time).
if not hasattr(_sat_compute.moneda_decimales, "cache_info"):
    _sat_compute.moneda_decimales = cache(_sat_compute.moneda_decimales)
CREDIT_NOTE_PRODUCT = "84111506"  # Servicios de facturación (SAT guide for bonificaciones)
GLOBAL_PRODUCT = "01010101"  # "No existe en el catálogo": the key SAT prescribes for global invoices


def _emisor(issuer: Issuer) -> cfdi40.Emisor:
    return cfdi40.Emisor(rfc=issuer.rfc, nombre=issuer.name, regimen_fiscal=issuer.regime)


def _receptor(tax: TaxData, use: str | None = None) -> cfdi40.Receptor:
    use = use or tax.cfdi_use
    check_receiver(tax.rfc, tax.regime, use, tax.postal_code)
    return cfdi40.Receptor(
        rfc=tax.rfc,
        nombre=tax.name,
        domicilio_fiscal_receptor=tax.postal_code,
        regimen_fiscal_receptor=tax.regime,
        uso_cfdi=use,
    )


def _impuestos(vat: VatTreatment) -> cfdi40.Impuestos | None:
    if vat is VatTreatment.NOT_OBJECT:
        return None
    if vat is VatTreatment.EXEMPT:
        return cfdi40.Impuestos(traslados=cfdi40.Traslado(impuesto="002", tipo_factor="Exento"))
    return cfdi40.Impuestos(
        traslados=cfdi40.Traslado(impuesto="002", tipo_factor="Tasa", tasa_o_cuota=VAT_RATE[vat])
    )


def _check_line(line: Line) -> None:
    if line.quantity <= 0:
        raise CfdiRuleError(f"line '{line.concept}': quantity must be positive")
    if line.unit_price < 0:
        raise CfdiRuleError(f"line '{line.concept}': unit price must not be negative")
    if not line.concept.strip() or "|" in line.concept:
        raise CfdiRuleError(f"line '{line.concept}': description must be non-empty and without '|'")
    base = (line.quantity * line.unit_price).quantize(TWO) - (line.discount or 0)
    if base <= 0 and line.vat is not VatTreatment.NOT_OBJECT:
        # SAT requires Traslado Base >= 0.000001: a taxed line of 0.00 cannot be expressed.
        raise CfdiRuleError(f"line '{line.concept}': amount {base} must be positive for a taxed line")


def _concepto(line: Line) -> cfdi40.Concepto:
    _check_line(line)
    return cfdi40.Concepto(
        clave_prod_serv=line.product_key,
        cantidad=line.quantity,
        clave_unidad=line.unit_key,
        descripcion=line.concept,
        valor_unitario=line.unit_price,
        objeto_imp=objeto_imp(line.vat),
        unidad=line.unit_name,
        descuento=line.discount or None,
        impuestos=_impuestos(line.vat),
    )


def _relacionados(related: tuple[Related, ...]) -> list[cfdi40.CfdiRelacionados] | None:
    if not related:
        return None
    return [cfdi40.CfdiRelacionados(tipo_relacion=r.relation, cfdi_relacionado=list(r.uuids)) for r in related]


def payment_method(paid_in_full_at_issue: bool, payment_form: str | None) -> tuple[str, str]:
    """(MetodoPago, FormaPago): PUE with the settling form when paid at issue, else PPD with 99."""
    if paid_in_full_at_issue:
        if not payment_form or payment_form == "99":
            raise CfdiRuleError("a PUE invoice needs the payment form that settled it (not 99)")
        return "PUE", payment_form
    return "PPD", "99"


def build_invoice(inv: Invoice) -> cfdi40.Comprobante:
    """A nominative CFDI Ingreso for a customer with tax data."""
    if inv.receiver.tax is None:
        raise CfdiRuleError(
            f"invoice {inv.invoice_id}: customer has no tax data; it goes into the global invoice"
        )
    if not inv.lines:
        raise CfdiRuleError(f"invoice {inv.invoice_id} has no lines")
    metodo, forma = payment_method(inv.paid_in_full_at_issue, inv.payment_form)
    return cfdi40.Comprobante(
        emisor=_emisor(inv.issuer),
        lugar_expedicion=inv.issuer.postal_code,
        receptor=_receptor(inv.receiver.tax),
        conceptos=[_concepto(line) for line in inv.lines],
        moneda=inv.currency,
        tipo_de_comprobante="I",
        exportacion="01",
        serie=inv.series,
        folio=inv.folio,
        forma_pago=forma,
        metodo_pago=metodo,
        cfdi_relacionados=_relacionados(inv.related),
        fecha=inv.issued_at.replace(tzinfo=None, microsecond=0),
    )


def build_substitute(inv: Invoice, replaced_uuid: str) -> cfdi40.Comprobante:
    """A new Ingreso that replaces `replaced_uuid` (TipoRelacion 04); cancel the old one with motive 01."""
    rel = tuple(r for r in inv.related if r.relation != "04") + (Related("04", (replaced_uuid,)),)
    return build_invoice(replace(inv, related=rel))


def check_period(period: GlobalPeriod) -> None:
    if period.periodicity not in ("01", "02", "03", "04", "05"):
        raise CfdiRuleError(f"global periodicity '{period.periodicity}' must be 01–05")
    months = int(period.months) if period.months.isdigit() else 0
    if period.periodicity == "05" and not 13 <= months <= 18:
        raise CfdiRuleError("a bimestral global invoice uses months 13–18")
    if period.periodicity != "05" and not 1 <= months <= 12:
        raise CfdiRuleError("a global invoice's month must be 01–12")
    if period.year < 2022:
        raise CfdiRuleError("InformacionGlobal year must be 2022 or later")


def build_global(
    issuer: Issuer,
    period: GlobalPeriod,
    receipts: list[Invoice],
    *,
    series: str,
    folio: str,
    issued_at: datetime,
    payment_form: str,
) -> cfdi40.Comprobante:
    """One CFDI to público en general covering receipts of customers without tax data.

    One concepto per (receipt, VAT treatment), NoIdentificacion = the receipt's series-folio,
    ClaveProdServ 01010101 / ClaveUnidad ACT / "Venta" as SAT's guide prescribes. Global
    invoices cover operations already paid, so they are PUE with the predominant payment form.
    """
    check_period(period)
    if not receipts:
        raise CfdiRuleError("a global invoice needs at least one receipt")
    conceptos = []
    for r in receipts:
        if r.receiver.tax is not None:
            raise CfdiRuleError(f"invoice {r.invoice_id} has tax data: issue it nominatively")
        by_vat: OrderedDict[VatTreatment, Decimal] = OrderedDict()
        for line in r.lines:
            _check_line(line)
            amount = (line.quantity * line.unit_price).quantize(TWO) - (line.discount or 0)
            by_vat[line.vat] = by_vat.get(line.vat, Decimal(0)) + amount
        for vat, amount in by_vat.items():
            if amount <= 0:
                continue
            conceptos.append(
                cfdi40.Concepto(
                    clave_prod_serv=GLOBAL_PRODUCT,
                    cantidad=Decimal(1),
                    clave_unidad="ACT",
                    descripcion="Venta",
                    valor_unitario=amount,
                    objeto_imp=objeto_imp(vat),
                    no_identificacion=f"{r.series}-{r.folio}",
                    impuestos=_impuestos(vat),
                )
            )
    metodo, forma = payment_method(True, payment_form)
    return cfdi40.Comprobante(
        emisor=_emisor(issuer),
        lugar_expedicion=issuer.postal_code,
        receptor=cfdi40.Receptor(
            rfc=PUBLIC_RFC,
            nombre=PUBLIC_NAME,
            # SAT: for the generic RFC the receiver's postal code is the place of issue.
            domicilio_fiscal_receptor=issuer.postal_code,
            regimen_fiscal_receptor="616",
            uso_cfdi="S01",
        ),
        conceptos=conceptos,
        tipo_de_comprobante="I",
        exportacion="01",
        serie=series,
        folio=folio,
        forma_pago=forma,
        metodo_pago=metodo,
        informacion_global=cfdi40.InformacionGlobal(
            periodicidad=period.periodicity, meses=period.months, ano=period.year
        ),
        fecha=issued_at.replace(tzinfo=None, microsecond=0),
    )


def build_payment(issuer: Issuer, receiver: TaxData, payment: PaymentInfo) -> cfdi40.Comprobante:
    """A CFDI of type P with the Pagos 2.0 complement for a payment of PPD invoice(s).

    Each paid document carries NumParcialidad, ImpSaldoAnt, ImpPagado and ImpSaldoInsoluto
    (= ImpSaldoAnt − ImpPagado) and its taxes in proportion to the amount paid.
    """
    if not payment.documents:
        raise CfdiRuleError(f"payment {payment.payment_id} settles no document")
    if payment.form == "99":
        raise CfdiRuleError("FormaDePagoP must be the actual payment form, not 99")
    check_receiver(receiver.rfc, receiver.regime, "CP01", receiver.postal_code)
    docs = []
    for d in payment.documents:
        cfdi = CFDI.from_string(d.stamped_xml)
        if cfdi.get("MetodoPago") != "PPD":
            raise CfdiRuleError("payment complements are only for PPD invoices")
        if "Complemento" not in cfdi or "TimbreFiscalDigital" not in cfdi["Complemento"]:
            raise CfdiRuleError("the paid invoice must be stamped (it needs its UUID)")
        if cfdi["Receptor"]["Rfc"] != receiver.rfc:
            raise CfdiRuleError("the paid invoice was issued to another RFC")
        if d.installment < 1:
            raise CfdiRuleError("NumParcialidad starts at 1")
        if not Decimal(0) < d.amount <= d.previous_balance:
            raise CfdiRuleError("ImpPagado must be positive and not exceed ImpSaldoAnt")
        if d.previous_balance > cfdi["Total"]:
            raise CfdiRuleError("ImpSaldoAnt cannot exceed the invoice total")
        docs.append(
            cfdi40.PagoComprobante(
                comprobante=cfdi,
                num_parcialidad=d.installment,
                imp_saldo_ant=d.previous_balance,
                imp_pagado=d.amount,
            )
        )
    return cfdi40.Comprobante.pago_comprobantes(
        comprobantes=docs,
        fecha_pago=payment.paid_at.replace(tzinfo=None, microsecond=0),
        forma_pago=payment.form,
        emisor=_emisor(issuer),
        lugar_expedicion=issuer.postal_code,
        receptor=_receptor(receiver, use="CP01"),
        serie=payment.series,
        folio=payment.folio,
        fecha=(payment.issued_at or payment.paid_at).replace(tzinfo=None, microsecond=0),
    )


def build_credit_note(
    issuer: Issuer,
    receiver: TaxData | None,
    original_uuid: str,
    lines: list[Line],
    *,
    series: str,
    folio: str,
    issued_at: datetime,
    payment_form: str = "17",
) -> cfdi40.Comprobante:
    """A CFDI Egreso (nota de crédito) related to the original with TipoRelacion 01.

    Lines keep the VAT treatment of what they correct. Without tax data the note goes to
    público en general like the original did. FormaPago defaults to 17 (compensación): the
    credit is applied against the customer's balance.
    """
    if not lines:
        raise CfdiRuleError("a credit note needs at least one line")
    metodo, forma = payment_method(True, payment_form)
    receptor = (
        _receptor(receiver, use="G02")
        if receiver is not None
        else cfdi40.Receptor(
            rfc=PUBLIC_RFC,
            nombre=PUBLIC_NAME,
            domicilio_fiscal_receptor=issuer.postal_code,
            regimen_fiscal_receptor="616",
            uso_cfdi="S01",
        )
    )
    return cfdi40.Comprobante(
        emisor=_emisor(issuer),
        lugar_expedicion=issuer.postal_code,
        receptor=receptor,
        conceptos=[_concepto(line) for line in lines],
        tipo_de_comprobante="E",
        exportacion="01",
        serie=series,
        folio=folio,
        forma_pago=forma,
        metodo_pago=metodo,
        cfdi_relacionados=[cfdi40.CfdiRelacionados(tipo_relacion="01", cfdi_relacionado=[original_uuid])],
        fecha=issued_at.replace(tzinfo=None, microsecond=0),
    )


@dataclass(frozen=True)
class Cancellation:
    """A validated cancellation request (motive 01–04; 01 carries the substituting UUID)."""

    uuid: str
    motive: str
    substitute_uuid: str | None = None

    def __post_init__(self) -> None:
        check_cancellation(self.motive, self.substitute_uuid)
        if self.substitute_uuid and self.substitute_uuid.lower() == self.uuid.lower():
            raise CfdiRuleError("a CFDI cannot substitute itself")
