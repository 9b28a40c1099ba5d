"""The customer's invoice (recibo) as a PDF, in Spanish: consumption history chart, lines,
totals and the payment reference. Pure rendering from plain dicts: no database access."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from textwrap import wrap
from typing import Any

MONTHS = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"]


def _t(text: Any) -> str:
    # Core PDF fonts are Latin-1 (enough for Spanish); anything else is replaced, never fails.
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def money(x: Decimal | str) -> str:
    return f"${Decimal(x):,.2f}"


def _d(x: date | str) -> str:
    d = date.fromisoformat(x) if isinstance(x, str) else x
    return f"{d.day:02d}/{MONTHS[d.month - 1]}/{d.year}"


def render_invoice_pdf(inv: dict[str, Any], history: list[tuple[str, int, bool]],
                       municipality_name: str = "", *, customer_name: str = "", service_address: str = "",
                       class_name: str = "", references: dict[str, Any] | None = None) -> bytes:
    """`inv`: an invoice row (as returned by the API's loader); `history`: (period "YYYY-MM",
    billed m³, estimated) oldest first, this invoice's period included; `references`: the
    invoice's payment references (`cloud.payments` bank, contract and store), None when the
    invoice takes no payments (superseded, void, draft: `payment_reference` then says why)."""
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_title(_t(f"Recibo {inv['number']}"))
    pdf.set_author("CEA Querétaro")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 8, _t("Comisión Estatal de Aguas de Querétaro"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    kind = "Recibo de servicios de agua" if inv["kind"] == "regular" else "Recibo de corrección"
    pdf.cell(0, 6, _t(f"{kind} - {municipality_name or inv['municipality']} ({inv['municipality']})"),
             new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    def pair(label: str, value: Any) -> None:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(42, 5, _t(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 5, _t(value), new_x="LMARGIN", new_y="NEXT")

    if customer_name:
        pair("Nombre:", customer_name)
    if service_address:
        pair("Domicilio del servicio:", service_address)
    pair("Folio:", inv["number"])
    pair("Contrato:", inv["contract_id"])
    pair("Zona:", inv.get("zone") or "")
    pair("Tipo de uso:", (class_name or inv["use_class"])
         + (f" ({inv['units']} viviendas)" if inv.get("units", 1) > 1 else ""))
    pair("Periodo:", f"{_d(inv['period_start'])} al {_d(inv['period_end'])}")
    pair("Fecha de emisión:", _d(inv["issue_date"]))
    pair("Fecha límite de pago:", _d(inv["due_date"]))
    if inv.get("corrects"):
        pair("Corrige al recibo:", inv["corrects"])
    basis = inv.get("basis") or {}
    if basis.get("method") == "readings":
        pair("Medidor:", basis.get("meter"))
        pair("Lectura anterior:", f"{Decimal(basis['opening']['value_l']) / 1000:.3f} m³")
        pair("Lectura actual:", f"{Decimal(basis['closing']['value_l']) / 1000:.3f} m³")
    elif basis.get("method") == "estimate":
        pair("Medidor:", basis.get("meter") or "")
        pair("Lectura:", "Sin lectura válida: consumo ESTIMADO con su promedio diario")
    pair("Consumo facturado:", f"{inv['billed_m3']} m³" + (" (estimado)" if inv["estimated"] else ""))
    pair("Tarifa:", ", ".join(inv.get("tariff_versions") or []))
    pdf.ln(3)

    # Consumption history: bars of billed m³ per period, estimated periods hatched in grey.
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, _t("Historial de consumo (m³)"), new_x="LMARGIN", new_y="NEXT")
    x0, y0, w, h = pdf.l_margin + 5, pdf.get_y() + 6, 170.0, 40.0  # room for the top bar's label
    hist = history[-12:]
    top = max([m for _, m, _ in hist] + [1])
    pdf.set_draw_color(120, 120, 120)
    pdf.line(x0, y0 + h, x0 + w, y0 + h)
    bw = w / max(len(hist), 1)
    pdf.set_font("Helvetica", "", 7)
    for i, (period, m3, est) in enumerate(hist):
        bh = h * m3 / top
        bx = x0 + i * bw + bw * 0.15
        if est:
            pdf.set_fill_color(190, 190, 190)
        elif period == inv["period"]:
            pdf.set_fill_color(0, 90, 160)
        else:
            pdf.set_fill_color(110, 160, 210)
        if bh > 0:
            pdf.rect(bx, y0 + h - bh, bw * 0.7, bh, style="F")
        pdf.set_xy(bx - 2, y0 + h - bh - 4)
        pdf.cell(bw * 0.7 + 4, 4, str(m3), align="C")
        y, mo = period.split("-")
        pdf.set_xy(bx - 2, y0 + h + 1)
        pdf.cell(bw * 0.7 + 4, 4, _t(f"{MONTHS[int(mo) - 1]} {y[2:]}"), align="C")
    pdf.set_xy(pdf.l_margin, y0 + h + 8)
    pdf.set_font("Helvetica", "I", 7)
    pdf.cell(0, 4, _t("Gris: periodo estimado. Azul oscuro: este periodo."), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    # Lines.
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(230, 236, 245)
    for label, width, align in (("Concepto", 96, "L"), ("Importe", 30, "R"), ("IVA %", 20, "R"),
                                ("IVA", 25, "R")):
        pdf.cell(width, 6, _t(label), border=1, align=align, fill=True)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for ln in inv["lines"]:
        rate = Decimal(ln["vat_rate"]) * 100
        pdf.cell(96, 6, _t(ln["description"]), border=1)
        pdf.cell(30, 6, money(ln["amount"]), border=1, align="R")
        pdf.cell(20, 6, f"{rate:.0f} %", border=1, align="R")
        pdf.cell(25, 6, money(ln["vat"]), border=1, align="R")
        pdf.ln()
    pdf.ln(2)
    for label, value, bold in (("Subtotal:", inv["subtotal"], False), ("IVA:", inv["vat"], False),
                               ("Total a pagar:", inv["total"], True)):
        pdf.set_font("Helvetica", "B" if bold else "", 11 if bold else 9)
        pdf.cell(146, 6, _t(label), align="R")
        pdf.cell(25, 6, _t(money(value) + " MXN" if bold else money(value)), align="R", new_x="LMARGIN",
                 new_y="NEXT")
    pdf.ln(4)

    _references(pdf, inv, references)
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 7)
    # Pre-wrapped fixed text: fpdf2's multi_cell line breaking costs more than the rest of the page.
    for text in wrap(_t(
            "El agua para uso doméstico tiene tasa 0 % de IVA (Ley del IVA, art. 2-A, fracc. II, inciso h). "
            "Alcantarillado y saneamiento causan 16 % (SCJN 2a./J. 29/2011). Recargos de 1.47 % mensual sobre "
            "saldo vencido a partir del segundo mes. Este recibo no es un comprobante fiscal digital (CFDI)."), 140):
        pdf.cell(0, 3.5, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _references(pdf: Any, inv: dict[str, Any], refs: dict[str, Any] | None) -> None:
    """The ways to pay this invoice: bank and contract references, and the convenience-store
    barcode (Code 128) with its digits; a superseded invoice says so instead."""
    pdf.set_draw_color(0, 90, 160)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, _t("Referencias de pago"), border="LTR", new_x="LMARGIN", new_y="NEXT")
    if refs is None:  # withdrawn: superseded, void or draft (the reason is in payment_reference)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 6, _t(inv["payment_reference"]), border="LBR", new_x="LMARGIN", new_y="NEXT")
        return
    rows = [("Depósito o transferencia (referencia bancaria):", refs.get("bank")),
            ("Referencia del contrato (paga el adeudo más antiguo):", refs.get("contract"))]
    for label, value in rows:
        if not value:
            continue
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(95, 6, _t(label), border="L")
        pdf.set_font("Courier", "B", 12)
        pdf.cell(0, 6, _t(value), border="R", new_x="LMARGIN", new_y="NEXT")
    store = refs.get("store")
    if store:
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(0, 5, _t("Tiendas de conveniencia (importe exacto, hasta la fecha límite):"), border="LR",
                 new_x="LMARGIN", new_y="NEXT")
        _code128(pdf, store, pdf.l_margin + 4, pdf.get_y() + 1, height=14)
        pdf.set_y(pdf.get_y() + 16)
        pdf.set_font("Courier", "", 9)
        pdf.cell(0, 5, _t(store), border="LR", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 7)
    pdf.cell(0, 4, _t(f"En ventanillas de la CEA: referencia {inv['payment_reference']}"), border="LBR",
             new_x="LMARGIN", new_y="NEXT")


def _code128(pdf: Any, data: str, x: float, y: float, *, height: float, module: float = 0.33) -> None:
    """Draw `data` as Code 128 (modules from python-barcode) with filled rectangles."""
    from barcode import Code128

    modules = Code128(data).build()[0]
    pdf.set_fill_color(0, 0, 0)
    run_start = None
    for i, bit in enumerate(modules + "0"):
        if bit == "1" and run_start is None:
            run_start = i
        elif bit != "1" and run_start is not None:
            pdf.rect(x + run_start * module, y, (i - run_start) * module, height, style="F")
            run_start = None
