"""TOTP second factor (RFC 6238, 30 s steps, 6 digits) with replay refusal: a code is accepted
once; the step it matched is stored and no step at or before it counts again."""

from __future__ import annotations

from datetime import datetime

import pyotp

ISSUER = "AquaCIS Edge"
STEP_S = 30
# One step either side: a phone clock a little off still works.
WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, login: str) -> str:
    """otpauth:// URI for an authenticator app (shown once, at enrolment)."""
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=ISSUER)


def now_code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def matching_step(secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The time step `code` is valid for (within WINDOW of `at`) and newer than `last_step`."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(at.timestamp()) // STEP_S
    for step in range(current - WINDOW, current + WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
