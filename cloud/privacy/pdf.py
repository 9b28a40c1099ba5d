"""The ARCO access export as a readable PDF in Spanish (the same document as the JSON). Pure."""

from __future__ import annotations

import json
from typing import Any

SECTIONS: dict[str, str] = {
    "contracts": "Contratos",
    "service_points": "Tomas (domicilio, ubicación, notas de acceso)",
    "readings": "Lecturas de sus medidores (con GPS y foto cuando las hay)",
    "work_orders": "Órdenes de trabajo en sus tomas",
    "invoices": "Facturas",
    "cfdi_documents": "Comprobantes fiscales (CFDI)",
    "payments": "Pagos",
    "payment_agreements": "Convenios de pago",
    "notifications": "Avisos enviados",
    "events": "Bitácora de cambios",
    "access_log": "Consultas de sus datos por personal del organismo",
    "arco_requests": "Solicitudes ARCO",
    "oppositions": "Oposiciones",
    "blocks": "Bloqueo (cancelación)",
    "portal_accounts": "Cuentas de la oficina virtual",
    "portal_activity": "Actividad en la oficina virtual",
}
CUSTOMER_LABELS = {"id": "Identificador", "name": "Nombre", "tax_id": "RFC", "email": "Correo electrónico",
                   "phone": "Teléfono", "tax_regime": "Régimen fiscal", "fiscal_zip": "C.P. fiscal",
                   "cfdi_use": "Uso de CFDI", "pensioner": "Pensionado/jubilado", "municipality": "Municipio",
                   "created_at": "Alta"}


def _t(text: Any) -> str:
    # Core fonts are Latin-1 (enough for Spanish); anything else is replaced, never fails.
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def _line(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if v is None or v == "" or v == [] or v == {}:
            continue
        parts.append(f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}")
    return "; ".join(parts)


def render(doc: dict[str, Any], utility: str = "Comisión Estatal de Aguas de Querétaro") -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_title(_t("Acceso a datos personales"))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 7, _t(utility), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _t("Respuesta a su solicitud de acceso (derechos ARCO, LGPDPPP). Contiene todos los "
                            "datos personales que el organismo conserva de usted, dónde y para qué."),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, _t(f"Generado: {doc['generated_at']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, _t("Sus datos de identificación"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for key, label in CUSTOMER_LABELS.items():
        value = doc["customer"].get(key)
        if isinstance(value, bool):
            value = "sí" if value else "no"
        pdf.multi_cell(0, 5, _t(f"{label}: {value if value not in (None, '') else '-'}"),
                       new_x="LMARGIN", new_y="NEXT")
    for name, title in SECTIONS.items():
        rows = doc.get(name) or []
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, _t(f"{title} ({len(rows)})"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        if not rows:
            pdf.cell(0, 4, _t("Sin registros."), new_x="LMARGIN", new_y="NEXT")
        for row in rows:
            pdf.multi_cell(0, 4, _t("- " + _line(row)), new_x="LMARGIN", new_y="NEXT")
    if doc.get("truncated"):
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(0, 5, _t("Secciones recortadas (se entregan aparte): " + ", ".join(doc["truncated"])),
                       new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
