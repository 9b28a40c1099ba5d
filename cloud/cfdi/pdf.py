"""Printed representation (PDF, Spanish) of a CFDI, made from its XML alone.

As SAT's Anexo 20 asks of a representación impresa: the QR code of SAT's verification URL, the
folio fiscal, the seals, the certificate numbers and the cadena original del complemento de
certificación digital del SAT (the TFD's cadena). Every document type renders: Ingreso, Egreso,
global and Pago (whose payments are listed with the documents they settle).
"""

from __future__ import annotations

import io
from urllib.parse import quote

from lxml import etree

from .validate import CFDI_NS, TFD_NS

C = f"{{{CFDI_NS}}}"
TIPOS = {"I": "Ingreso", "E": "Egreso (nota de crédito)", "P": "Pago", "T": "Traslado", "N": "Nómina"}


VERIFY_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"
PAGOS_NS = "http://www.sat.gob.mx/Pagos20"


def verification_url(root: etree._Element) -> str | None:
    """SAT's verification URL encoded in the QR code (Anexo 20: id, re, rr, tt, fe); None unstamped."""
    tfd = root.find(f"{C}Complemento/{{{TFD_NS}}}TimbreFiscalDigital")
    if tfd is None:
        return None
    em, re_ = root.find(C + "Emisor"), root.find(C + "Receptor")
    rfc_e = em.get("Rfc", "") if em is not None else ""
    rfc_r = re_.get("Rfc", "") if re_ is not None else ""
    return (f"{VERIFY_URL}?id={tfd.get('UUID')}&re={quote(rfc_e, safe='')}&rr={quote(rfc_r, safe='')}"
            f"&tt={root.get('Total')}&fe={(root.get('Sello') or '')[-8:]}")


def tfd_cadena(tfd: etree._Element) -> str:
    """Cadena original del complemento de certificación digital del SAT (TFD 1.1), as SAT's
    cadenaoriginal_TFD_1_1.xslt writes it: required fields, the optional Leyenda when present."""
    fields = [tfd.get("Version"), tfd.get("UUID"), tfd.get("FechaTimbrado"), tfd.get("RfcProvCertif")]
    if tfd.get("Leyenda"):
        fields.append(tfd.get("Leyenda"))
    fields += [tfd.get("SelloCFD"), tfd.get("NoCertificadoSAT")]
    return "||" + "|".join(" ".join((f or "").split()) for f in fields) + "||"


def _qr_png(text: str) -> bytes:
    import qrcode

    img = qrcode.make(text, box_size=4, border=2)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _latin1(text: str | None) -> str:
    # Core PDF fonts are Latin-1; anything else is replaced rather than failing the render.
    return (text or "").encode("latin-1", "replace").decode("latin-1")


def render_pdf(xml: bytes) -> bytes:
    from fpdf import FPDF

    root = etree.fromstring(xml)
    em = root.find(C + "Emisor")
    re_ = root.find(C + "Receptor")
    tfd = root.find(f"{C}Complemento/{{{TFD_NS}}}TimbreFiscalDigital")
    pdf = FPDF(format="Letter")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    t = _latin1

    def row(label: str, value: str | None, w: float = 45) -> None:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(w, 5, t(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 5, t(value), new_x="LMARGIN", new_y="NEXT")

    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, t(f"Factura electrónica CFDI 4.0 - {TIPOS.get(root.get('TipoDeComprobante', ''), '')}"),
             new_x="LMARGIN", new_y="NEXT")
    if tfd is not None and "PRUEBA" in (tfd.get("Leyenda") or ""):
        pdf.set_text_color(200, 0, 0)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, t("DOCUMENTO DE PRUEBA - SIN VALIDEZ FISCAL"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    row("Serie y folio:", f"{root.get('Serie', '')}-{root.get('Folio', '')}")
    row("Fecha de emisión:", root.get("Fecha"))
    row("Lugar de expedición:", root.get("LugarExpedicion"))
    if em is not None:
        row("Emisor:", f"{em.get('Nombre')} (RFC {em.get('Rfc')}, régimen {em.get('RegimenFiscal')})")
    if re_ is not None:
        row("Receptor:", f"{re_.get('Nombre')} (RFC {re_.get('Rfc')}, uso {re_.get('UsoCFDI')})")
    row("Método / forma de pago:", f"{root.get('MetodoPago', '-')} / {root.get('FormaPago', '-')}")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 9)
    widths = (25, 18, 80, 27, 35)
    for w, h in zip(widths, ("Clave", "Cantidad", "Descripción", "Objeto imp.", "Importe"), strict=True):
        pdf.cell(w, 6, t(h), border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for c in root.iterfind(f"{C}Conceptos/{C}Concepto"):
        vals = (c.get("ClaveProdServ"), c.get("Cantidad"), (c.get("Descripcion") or "")[:48],
                c.get("ObjetoImp"), c.get("Importe"))
        for w, v in zip(widths, vals, strict=True):
            pdf.cell(w, 6, t(v), border=1)
        pdf.ln()
    pdf.ln(2)
    imp = root.find(C + "Impuestos")
    row("Subtotal:", root.get("SubTotal"))
    if imp is not None:
        for tr in imp.iterfind(f"{C}Traslados/{C}Traslado"):
            rate = tr.get("TasaOCuota")
            label = f"IVA {float(rate) * 100:.0f}%:" if rate else "IVA exento:"
            row(label, tr.get("Importe") or "0.00")
    row("Total:", f"{root.get('Total')} {root.get('Moneda')}")
    pagos = root.find(f"{C}Complemento/{{{PAGOS_NS}}}Pagos")
    if pagos is not None:
        pdf.ln(1)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 5, t("Complemento de pagos 2.0"), new_x="LMARGIN", new_y="NEXT")
        for pago in pagos.iterfind(f"{{{PAGOS_NS}}}Pago"):
            row("Fecha de pago:", f"{pago.get('FechaPago')}  forma {pago.get('FormaDePagoP')}  monto "
                                  f"{pago.get('Monto')} {pago.get('MonedaP')}")
            for dr in pago.iterfind(f"{{{PAGOS_NS}}}DoctoRelacionado"):
                row("Documento pagado:", f"{dr.get('IdDocumento')} parcialidad {dr.get('NumParcialidad')}: "
                                         f"saldo anterior {dr.get('ImpSaldoAnt')}, pagado {dr.get('ImpPagado')}, "
                                         f"saldo insoluto {dr.get('ImpSaldoInsoluto')}")
    relacionados = root.find(f"{C}CfdiRelacionados")
    if relacionados is not None:
        uuids = ", ".join(r.get("UUID", "") for r in relacionados.iterfind(f"{C}CfdiRelacionado"))
        row("CFDI relacionados:", f"tipo {relacionados.get('TipoRelacion')}: {uuids}")
    pdf.ln(2)
    if tfd is not None:
        row("Folio fiscal (UUID):", tfd.get("UUID"))
        row("Fecha de certificación:", tfd.get("FechaTimbrado"))
        row("RFC del PAC:", tfd.get("RfcProvCertif"))
        row("Certificado SAT:", tfd.get("NoCertificadoSAT"))
        if tfd.get("Leyenda"):
            row("Leyenda:", tfd.get("Leyenda"))
    else:
        row("Estado:", "Pendiente de timbrado (sin folio fiscal)")
    row("Certificado emisor:", root.get("NoCertificado"))
    pdf.set_font("Helvetica", "", 6)
    pdf.multi_cell(0, 3, t("Sello digital del CFDI: " + (root.get("Sello") or "")), new_x="LMARGIN", new_y="NEXT")
    if tfd is not None:
        pdf.multi_cell(0, 3, t("Sello del SAT: " + (tfd.get("SelloSAT") or "")), new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 3, t("Cadena original del complemento de certificación digital del SAT: " + tfd_cadena(tfd)),
                       new_x="LMARGIN", new_y="NEXT")
        url = verification_url(root)
        if url:
            pdf.ln(1)
            y = pdf.get_y()
            if y > 230:  # keep the code whole on one page
                pdf.add_page()
                y = pdf.get_y()
            pdf.image(io.BytesIO(_qr_png(url)), x=pdf.l_margin, y=y, w=32, h=32)
            pdf.set_xy(pdf.l_margin + 35, y + 2)
            pdf.multi_cell(0, 3, t("Verifique este comprobante en el SAT: " + url), new_x="LMARGIN", new_y="NEXT")
            pdf.set_y(y + 34)
    pdf.set_font("Helvetica", "I", 8)
    pdf.cell(0, 5, t("Este documento es una representación impresa de un CFDI."), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def render_ack_pdf(ack_xml: bytes, doc: dict[str, object]) -> bytes:
    """Printed cancellation acknowledgment (acuse de cancelación): the document cancelled, the
    motive, the substitute, the date and SAT's status code, from the PAC's acuse XML."""
    from fpdf import FPDF

    from .rules import CANCEL_MOTIVES

    root = etree.fromstring(ack_xml)

    def find(name: str) -> str:
        el = root.find(f".//{{*}}{name}")
        return (el.text or "") if el is not None and el.text else root.get(name, "")

    pdf = FPDF(format="Letter")
    pdf.add_page()
    t = _latin1
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, t("Acuse de cancelación de CFDI"), new_x="LMARGIN", new_y="NEXT")
    leyenda = find("Leyenda")
    if "PRUEBA" in leyenda:
        pdf.set_text_color(200, 0, 0)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, t("DOCUMENTO DE PRUEBA - SIN VALIDEZ FISCAL"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    motive = str(doc.get("cancel_motive") or find("Motivo"))
    rows = [("Folio fiscal (UUID):", find("UUID") or str(doc.get("uuid") or "")),
            ("RFC emisor:", root.get("RfcEmisor", "")),
            ("Serie y folio:", f"{doc.get('series') or ''}-{doc.get('folio') or ''}"),
            ("Fecha de cancelación:", root.get("Fecha", "")),
            ("Estatus SAT:", find("EstatusUUID")),
            ("Motivo:", f"{motive} {CANCEL_MOTIVES.get(motive, '')}"),
            ("Folio de sustitución:", find("FolioSustitucion") or str(doc.get("substitute_uuid") or "-"))]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(50, 6, t(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(0, 6, t(value), new_x="LMARGIN", new_y="NEXT")
    if leyenda:
        pdf.ln(2)
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, t(leyenda), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
