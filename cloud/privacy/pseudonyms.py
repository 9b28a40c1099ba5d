"""Consistent pseudonyms for non-production copies: the same input gives the same pseudonym
within one copy (a keyed hash; the key is random per copy and never stored), and each
pseudonym has the shape of what it replaces (an RFC passes SAT's pattern and check digit).
Pure."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, timedelta

from stdnum.mx import rfc as stdnum_rfc

FIRST = ("María", "José", "Guadalupe", "Juan", "Ana", "Luis", "Rosa", "Carlos", "Elena", "Miguel", "Sofía",
         "Jorge", "Laura", "Pedro", "Carmen", "Raúl", "Patricia", "Héctor", "Lucía", "Arturo")
LAST = ("García", "Hernández", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez",
        "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Reyes", "Jiménez", "Torres", "Díaz", "Ruiz", "Mendoza")
STREETS = ("Av. Hidalgo", "Calle Juárez", "Calle Allende", "Av. Zaragoza", "Calle Morelos", "Calle Guerrero",
           "Av. Universidad", "Calle Madero", "Calle Pino Suárez", "Av. Constituyentes")
COLONIES = ("Centro", "Las Flores", "San José", "El Mirador", "Los Olivos", "La Cruz", "Jardines", "San Pablo")
LETTERS = "ABCDEFGHIJKLMNPQRSTUVWXYZ"
ALNUM = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
#: RFCs that name nobody (público en general, foreign): kept as they are.
GENERIC_RFCS = frozenset({"XAXX010101000", "XEXX010101000"})


class Pseudonymiser:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _n(self, kind: str, value: str) -> int:
        digest = hmac.new(self._key, f"{kind}\x00{value.strip().casefold()}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest, "big")

    def name(self, value: str | None) -> str | None:
        if not value:
            return value
        n = self._n("name", value)
        return f"{FIRST[n % len(FIRST)]} {LAST[(n >> 8) % len(LAST)]} {LAST[(n >> 16) % len(LAST)]} {n % 9973:04d}"

    def rfc(self, value: str | None) -> str | None:
        if not value or value.upper() in GENERIC_RFCS:
            return value
        n = self._n("rfc", value.upper())
        head_len = 3 if len(value) == 12 else 4  # a company's RFC has three letters, a person's four
        head = "".join(LETTERS[(n >> (5 * i)) % len(LETTERS)] for i in range(head_len))
        born = date(1940, 1, 1) + timedelta(days=(n >> 40) % 25_000)
        body = head + born.strftime("%y%m%d") + "".join(ALNUM[(n >> (60 + 6 * i)) % len(ALNUM)] for i in range(2))
        return body + stdnum_rfc.calc_check_digit(body)

    def email(self, value: str | None) -> str | None:
        if not value:
            return value
        return f"titular{self._n('email', value) % 10**10:010d}@ejemplo.invalid"

    def phone(self, value: str | None) -> str | None:
        if not value:
            return value
        return f"44{self._n('phone', value) % 10**8:08d}"

    def address(self, value: str | None) -> str | None:
        if not value:
            return value
        n = self._n("address", value)
        return f"{STREETS[n % len(STREETS)]} {(n >> 8) % 999 + 1}, Col. {COLONIES[(n >> 20) % len(COLONIES)]}"

    def text(self, value: str | None) -> str | None:
        """Free text (notes, message bodies) cannot be scrubbed field by field: replaced."""
        return value if not value else "(texto anonimizado)"

    @staticmethod
    def coarse(value: float | None) -> float | None:
        """GPS to two decimals (about a kilometre): the zone stays, the house does not."""
        return None if value is None else round(float(value), 2)
