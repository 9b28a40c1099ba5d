"""The one vocabulary of processing purposes (LGPDPPP art. 15-16: the privacy notice names them).

Two lists: why staff read a person's data (tagged on every access-log row) and why the suite
writes to a person (notification purposes, the ones an opposition is about). Pure.
"""

from __future__ import annotations

from cloud.errors import Invalid

#: Why a staff member opens a person's data; sent as `X-Purpose` (API) and kept in the access log.
ACCESS_PURPOSES: dict[str, str] = {
    "customer_service": "Atención a la persona titular (ventanilla, teléfono)",
    "billing": "Facturación y CFDI",
    "collections": "Cobranza, convenios, cortes",
    "field_work": "Órdenes de trabajo y lectura en campo",
    "arco": "Atención de una solicitud ARCO",
    "audit": "Auditoría interna o de una autoridad",
    "fraud": "Investigación de toma clandestina o fraude",
}
DEFAULT_ACCESS_PURPOSE = "customer_service"

#: Purposes of what the suite sends a person. `opposable=False`: a legal or contractual duty
#: (LGPDPPP art. 10 IV: the relation between titular and utility) the person cannot oppose.
CONTACT_PURPOSES: dict[str, tuple[bool, str]] = {
    "billing": (False, "Factura y CFDI del periodo"),
    "account": (False, "Verificación de cuenta y cambio de contraseña de la oficina virtual"),
    "service": (False, "Avisos del servicio: suspensiones programadas por trabajos en la red"),
    "receipts": (True, "Confirmación de pagos recibidos"),
    "reminders": (True, "Recordatorios de adeudo y aviso de corte por correo"),
    "marketing": (True, "Campañas y avisos informativos"),
}
OPPOSABLE = frozenset(p for p, (opposable, _) in CONTACT_PURPOSES.items() if opposable)

#: The purpose of each notification kind of cloud/notifications/templates.py (a test checks
#: every template kind has one).
NOTIFICATION_PURPOSE: dict[str, str] = {
    "invoice_issued": "billing",
    "payment_received": "receipts",
    "cutoff_scheduled": "reminders",
    "planned_outage": "service",
    "portal_verify": "account",
    "portal_reset": "account",
}


def access_purpose(value: str | None) -> str:
    """A staff access purpose, or 422 naming `X-Purpose`."""
    if value is None or value == "":
        return DEFAULT_ACCESS_PURPOSE
    if value not in ACCESS_PURPOSES:
        raise Invalid(f"unknown purpose {value[:40]!r}; one of {', '.join(ACCESS_PURPOSES)}", field="X-Purpose")
    return value


def opposable_purpose(value: str, field: str = "purposes") -> str:
    if value not in OPPOSABLE:
        raise Invalid(f"purpose {value[:40]!r} cannot be opposed; opposable: {', '.join(sorted(OPPOSABLE))}",
                      field=field)
    return value


def purpose_of_notification(kind: str) -> str:
    try:
        return NOTIFICATION_PURPOSE[kind]
    except KeyError:
        raise KeyError(f"notification kind {kind!r} has no processing purpose (cloud/privacy/purposes.py)") from None
