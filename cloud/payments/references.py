"""Payment references (pure). Algorithms documented in docs/payments.md.

- Bank reference, 17 digits: municipality number (2) + contract number (7) + period YYMM (4)
  + invoice revision (2) + two check digits, ISO 7064 MOD 97-10 (the "algoritmo 97" family used
  by Mexican banks for referenced deposits): the whole number mod 97 is 1. It catches every
  single-digit error and every transposition of adjacent digits.
- Contract reference, 17 digits: same layout with period 0000 and revision 00; pays the
  contract's oldest debt first (a permanent reference printed on every bill).
- Convenience-store barcode, 32 digits (Code 128 numeric): `77` + the bank reference's 15-digit
  body + due date YYMMDD + amount in centavos (8 digits) + one Luhn (mod 10) check digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_CONTRACT_RE = re.compile(r"^[A-Z]{3}-(\d{2})-(\d{1,7})$")
BANK_LEN = 17
STORE_LEN = 32
STORE_PREFIX = "77"


class InvalidPaymentReference(ValueError):
    """A payment reference (or what it is built from) that is malformed or fails its check digits."""


def mod97_check(body: str) -> str:
    """Two ISO 7064 MOD 97-10 check digits for a string of digits."""
    if not body.isdigit():
        raise InvalidPaymentReference(f"reference body {body!r} is not all digits")
    return f"{98 - int(body + '00') % 97:02d}"


def mod97_valid(ref: str) -> bool:
    return ref.isdigit() and len(ref) >= 3 and int(ref) % 97 == 1


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # rightmost digit of the body is doubled (the check digit goes after it)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(ref: str) -> bool:
    return ref.isdigit() and len(ref) >= 2 and luhn_digit(ref[:-1]) == ref[-1]


def _contract_digits(contract_id: str) -> str:
    m = _CONTRACT_RE.match(contract_id)
    if not m:
        raise InvalidPaymentReference(f"contract id {contract_id!r} is not of the form EXP-NN-nnnnnnn")
    return m.group(1) + m.group(2).rjust(7, "0")


def _body(contract_id: str, period: str | None, revision: int) -> str:
    if period is None:
        yymm = "0000"
    else:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
            raise InvalidPaymentReference(f"period {period!r} is not YYYY-MM")
        yymm = period[2:4] + period[5:7]
    if not 0 <= revision <= 99:
        raise InvalidPaymentReference(f"revision {revision} outside 0..99")
    return _contract_digits(contract_id) + yymm + f"{revision:02d}"


def bank_reference(contract_id: str, period: str, revision: int = 0) -> str:
    body = _body(contract_id, period, revision)
    return body + mod97_check(body)


def contract_reference(contract_id: str) -> str:
    body = _body(contract_id, None, 0)
    return body + mod97_check(body)


def store_reference(contract_id: str, period: str, revision: int, due: date, amount_cents: int) -> str:
    if not 0 < amount_cents < 10**8:
        raise InvalidPaymentReference(f"amount {amount_cents} centavos does not fit the barcode (max 999,999.99)")
    body = STORE_PREFIX + _body(contract_id, period, revision) + due.strftime("%y%m%d") + f"{amount_cents:08d}"
    return body + luhn_digit(body)


@dataclass(frozen=True)
class ParsedReference:
    kind: str                 # bank | contract | store
    municipality_no: int
    contract_no: int
    period: str | None        # YYYY-MM (20YY), None for a contract reference
    revision: int
    due: date | None = None
    amount_cents: int | None = None

    @property
    def contract_id(self) -> str:
        return f"EXP-{self.municipality_no:02d}-{self.contract_no:07d}"

    @property
    def bank_reference(self) -> str:
        """The bank reference of the same invoice (a store barcode names its invoice this way)."""
        body = f"{self.municipality_no:02d}{self.contract_no:07d}"
        body += "0000" if self.period is None else self.period[2:4] + self.period[5:7]
        body += f"{self.revision:02d}"
        return body + mod97_check(body)


def parse(ref: str) -> ParsedReference:
    """Validate and take apart a reference as keyed in or scanned. Raises InvalidPaymentReference."""
    r = ref if ref.isdigit() else re.sub(r"[\s-]", "", ref or "")
    if not r.isdigit():
        raise InvalidPaymentReference(f"reference {ref!r} has characters other than digits")
    if len(r) == BANK_LEN:
        if not mod97_valid(r):
            raise InvalidPaymentReference(f"reference {ref!r} fails its check digits (MOD 97-10)")
        body = r[:15]
    elif len(r) == STORE_LEN and r.startswith(STORE_PREFIX):
        if not luhn_valid(r):
            raise InvalidPaymentReference(f"barcode {ref!r} fails its check digit (Luhn)")
        body = r[2:17]
    else:
        raise InvalidPaymentReference(f"reference {ref!r} has {len(r)} digits; expected {BANK_LEN} (bank) or {STORE_LEN} (store)")
    mun, num, yymm, rev = int(body[:2]), int(body[2:9]), body[9:13], int(body[13:15])
    period = None if yymm == "0000" else f"20{yymm[:2]}-{yymm[2:]}"
    if period is not None and not 1 <= int(yymm[2:]) <= 12:
        raise InvalidPaymentReference(f"reference {ref!r} names month {yymm[2:]}")
    if len(r) == STORE_LEN:
        try:
            due = date(2000 + int(r[17:19]), int(r[19:21]), int(r[21:23]))
        except ValueError as e:
            raise InvalidPaymentReference(f"barcode {ref!r} has a bad due date") from e
        return ParsedReference("store", mun, num, period, rev, due, int(r[23:31]))
    return ParsedReference("contract" if period is None else "bank", mun, num, period, rev)
