"""Message templates: Spanish (es-MX) by default, English available."""

from __future__ import annotations

from string import Formatter
from typing import Any

KINDS = ("invoice_issued", "payment_received", "cutoff_scheduled", "planned_outage", "portal_verify", "portal_reset")

TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    ("invoice_issued", "es"): (
        "Su factura {folio} está disponible",
        "Estimado(a) {name}:\n\n"
        "Le informamos que se emitió su factura {folio} del contrato {contract} por un total de "
        "${total} MXN, con fecha límite de pago {due_date}.\n"
        "Folio fiscal (UUID): {uuid}\n"
        "Referencia de pago: {reference}\n\n"
        "Adjuntamos el CFDI en XML y su representación impresa en PDF.\n\n"
        "Atentamente,\n{utility}",
    ),
    ("invoice_issued", "en"): (
        "Your invoice {folio} is available",
        "Dear {name},\n\nYour invoice {folio} for contract {contract} was issued for a total of "
        "${total} MXN, due {due_date}.\nFiscal folio (UUID): {uuid}\nPayment reference: {reference}\n\n"
        "The CFDI XML and its PDF are attached.\n\nRegards,\n{utility}",
    ),
    ("payment_received", "es"): (
        "Recibimos su pago de ${amount} MXN",
        "Estimado(a) {name}:\n\n"
        "Recibimos su pago de ${amount} MXN el {paid_at} para el contrato {contract} "
        "(canal: {channel}). Saldo pendiente: ${balance} MXN.\n\nGracias.\n{utility}",
    ),
    ("payment_received", "en"): (
        "We received your payment of ${amount} MXN",
        "Dear {name},\n\nWe received your payment of ${amount} MXN on {paid_at} for contract "
        "{contract} (channel: {channel}). Outstanding balance: ${balance} MXN.\n\nThank you.\n{utility}",
    ),
    ("cutoff_scheduled", "es"): (
        "Aviso de suspensión del servicio - contrato {contract}",
        "Estimado(a) {name}:\n\n"
        "Su contrato {contract} tiene un adeudo de ${debt} MXN. Si no se cubre, el servicio será "
        "suspendido a partir del {cutoff_date}.\n"
        "Puede pagar con la referencia {reference} en bancos y tiendas de conveniencia.\n\n{utility}",
    ),
    ("cutoff_scheduled", "en"): (
        "Service suspension notice - contract {contract}",
        "Dear {name},\n\nContract {contract} owes ${debt} MXN. Unless it is paid, the service will be "
        "suspended from {cutoff_date}.\nYou can pay with reference {reference} at banks and convenience "
        "stores.\n\n{utility}",
    ),
    ("portal_verify", "es"): (
        "Confirme su correo para la oficina virtual",
        "Hola:\n\nSe creó una cuenta de la oficina virtual con este correo para el contrato {contract}.\n"
        "Para activarla abra este enlace (vale {hours} horas):\n{link}\n\n"
        "Si usted no la pidió, ignore este mensaje.\n\n{utility}",
    ),
    ("portal_verify", "en"): (
        "Confirm your e-mail for the customer portal",
        "Hello,\n\nA customer portal account was created with this e-mail for contract {contract}.\n"
        "Open this link to activate it (valid {hours} hours):\n{link}\n\n"
        "If you did not ask for it, ignore this message.\n\n{utility}",
    ),
    ("portal_reset", "es"): (
        "Cambio de contraseña de la oficina virtual",
        "Hola:\n\nPara elegir una contraseña nueva abra este enlace (vale {hours} horas):\n{link}\n\n"
        "Si usted no lo pidió, ignore este mensaje; su contraseña no cambia.\n\n{utility}",
    ),
    ("portal_reset", "en"): (
        "Customer portal password change",
        "Hello,\n\nOpen this link to choose a new password (valid {hours} hours):\n{link}\n\n"
        "If you did not ask for it, ignore this message; your password stays.\n\n{utility}",
    ),
    ("planned_outage", "es"): (
        "Aviso de suspensión programada del servicio - contrato {contract}",
        "Estimado(a) {name}:\n\n"
        "Por trabajos en la red ({reason}), el suministro de agua en {address} (contrato {contract}) "
        "se suspenderá del {starts} al {ends} (hora del centro de México).\n"
        "Le recomendamos almacenar agua para ese periodo. Disculpe las molestias.\n\n{utility}",
    ),
    ("planned_outage", "en"): (
        "Planned water service interruption - contract {contract}",
        "Dear {name},\n\nBecause of network works ({reason}), the water supply at {address} (contract "
        "{contract}) will be interrupted from {starts} to {ends} (Mexico City time).\n"
        "Please store water for that period. We apologise for the inconvenience.\n\n{utility}",
    ),
}


class _Missing(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "-"  # a missing field prints as a dash rather than failing the notice


def fields(kind: str, language: str = "es") -> set[str]:
    subject, body = TEMPLATES[(kind, language)]
    return {f for text in (subject, body) for _, f, _, _ in Formatter().parse(text) if f}


def render(kind: str, data: dict[str, Any], language: str = "es") -> tuple[str, str]:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; one of {', '.join(KINDS)}")
    lang = language if (kind, language) in TEMPLATES else "es"
    subject, body = TEMPLATES[(kind, lang)]
    values = _Missing({k: str(v) for k, v in data.items()})
    values.setdefault("utility", "Comisión Estatal de Aguas")
    return subject.format_map(values), body.format_map(values)
