"""Portal accounts: sign-up by proof of a contract, e-mail verification and password reset by
one-time tokens sent through the notification outbox, linking more contracts, the activity log.

Proof of a contract: its number plus either the payment reference printed on its latest
invoice or the e-mail the utility has on file for its holder. Wrong proofs count against the
contract number like wrong passwords against a login (cloud/web/credentials.py): after five in
a row the contract cannot be claimed for 15 minutes, whoever tries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.errors import Conflict, Invalid
from cloud.ids import uuid7
from cloud.notifications.outbox import enqueue
from cloud.web import credentials

from .tables import accounts, activity, links, tokens

AUDIENCE = "customer"
CLAIM_AUDIENCE = "customer-claim"  # throttle key space for contract proofs
TOKEN_HOURS = {"verify": 48, "reset": 2}
MAX_EMAIL = 200


class ProofRefused(Invalid):
    """Contract and proof do not match (or the contract is locked); never says which."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not (3 <= len(email) <= MAX_EMAIL) or email.count("@") != 1 or " " in email or "." not in email.split("@")[1]:
        raise Invalid("escriba un correo electrónico válido", field="email")
    return email


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log(conn: Connection, account_id: str, action: str, at: datetime, *, contract_id: str | None = None,
        municipality: str | None = None, client: str | None = None) -> None:
    """One activity row; an account-level action (no contract) is written once per municipality
    the account holds contracts in, so each municipality's staff (row security) sees it in an
    ARCO export."""
    munis: list[str | None] = [municipality]
    if municipality is None and contract_id is None:
        munis = sorted(set(conn.execute(sa.select(links.c.municipality)
                                        .where(links.c.account_id == account_id)).scalars())) or [None]
    for muni in munis:
        conn.execute(activity.insert().values(id=uuid7(), account_id=account_id, at=at, action=action,
                                              contract_id=contract_id, municipality=muni,
                                              client=client[:64] if client else None))


def _locked(conn: Connection, contract_id: str, at: datetime) -> bool:
    from cloud.web.tables import web_login_throttle as t

    until = conn.execute(sa.select(t.c.locked_until).where(t.c.audience == CLAIM_AUDIENCE,
                                                           t.c.login == contract_id.lower())).scalar()
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=at.tzinfo)
    return until is not None and until > at


def check_proof(conn: Connection, contract_id: str, proof: str, at: datetime) -> dict[str, Any]:
    """The contract (id, municipality, customer_id, holder's e-mail) when `proof` proves it."""
    from cloud.billing.tables import invoices
    from cloud.registry.tables import contracts, customers

    contract_id = contract_id.strip().upper()[:40]
    refused = ProofRefused("el contrato y el dato de su recibo no coinciden (o hubo demasiados intentos: "
                           "espere 15 minutos)", field="proof")
    if not contract_id or _locked(conn, contract_id, at):
        raise refused
    row = conn.execute(sa.select(contracts.c.id, contracts.c.municipality, contracts.c.customer_id,
                                 customers.c.email).join(customers, customers.c.id == contracts.c.customer_id)
                       .where(contracts.c.id == contract_id)).mappings().first()
    given = "".join(proof.split()).lower()[:200]
    ok = False
    if row is not None and given:
        reference = conn.execute(sa.select(invoices.c.payment_reference).where(
            invoices.c.contract_id == contract_id, invoices.c.status == "issued")
            .order_by(invoices.c.period.desc(), invoices.c.revision.desc()).limit(1)).scalar()
        for expected in (reference, row["email"]):
            if expected and hmac.compare_digest("".join(str(expected).split()).lower(), given):
                ok = True
    if not ok:
        raise refused  # the caller counts it (count_failed_proof) in a transaction that commits
    return dict(row)  # type: ignore[arg-type]


def count_failed_proof(conn: Connection, contract_id: str, at: datetime, policy: credentials.Policy) -> None:
    credentials.record_failure(conn, CLAIM_AUDIENCE, contract_id.strip().upper()[:40], at, policy)


def _token(conn: Connection, account_id: str, purpose: str, at: datetime) -> str:
    secret = secrets.token_urlsafe(32)
    conn.execute(tokens.insert().values(token_sha256=_hash(secret), account_id=account_id, purpose=purpose,
                                        created_at=at, expires_at=at + timedelta(hours=TOKEN_HOURS[purpose])))
    return secret


def _link(conn: Connection, account_id: str, contract: dict[str, Any], at: datetime, client: str | None) -> None:
    have = conn.execute(sa.select(links.c.contract_id).where(links.c.account_id == account_id,
                                                             links.c.contract_id == contract["id"])).first()
    if have is None:
        conn.execute(links.insert().values(account_id=account_id, contract_id=contract["id"],
                                           municipality=contract["municipality"], linked_at=at))
        log(conn, account_id, "linked", at, contract_id=contract["id"], municipality=contract["municipality"],
            client=client)


def sign_up(conn: Connection, *, contract_id: str, proof: str, email: str, password: str, at: datetime,
            base_url: str, client: str | None = None) -> str:
    """A new, unverified account holding the proved contract; the verification link goes out
    through the outbox. Returns the account id."""
    email = normalise_email(email)
    contract = check_proof(conn, contract_id, proof, at)
    if conn.execute(sa.select(accounts.c.id).where(accounts.c.email == email)).first() is not None:
        raise Conflict("ya hay una cuenta con ese correo: inicie sesión y agregue el contrato desde ella",
                       field="email")
    account_id = uuid7()
    conn.execute(accounts.insert().values(id=account_id, email=email, created_at=at))
    credentials.set_password(conn, audience=AUDIENCE, subject=account_id, login=email, password=password, now=at)
    _link(conn, account_id, contract, at, client)
    log(conn, account_id, "signed_up", at, contract_id=contract["id"], municipality=contract["municipality"],
        client=client)
    secret = _token(conn, account_id, "verify", at)
    enqueue(conn, "portal_verify", email, {"contract": contract["id"], "hours": TOKEN_HOURS["verify"],
                                           "link": f"{base_url}/portal/verify/{secret}"},
            dedup_key=f"portal_verify:{account_id}:{_hash(secret)[:16]}", municipality=contract["municipality"],
            customer_id=contract["customer_id"], now=at)
    return account_id


def use_token(conn: Connection, secret: str, purpose: str, at: datetime) -> str | None:
    """The account of a valid, unused token of `purpose` (then spent), else None."""
    if not secret or len(secret) > 100:
        return None
    row = conn.execute(sa.select(tokens).where(tokens.c.token_sha256 == _hash(secret), tokens.c.purpose == purpose)
                       .with_for_update()).mappings().first()
    if row is None or row["used_at"] is not None:
        return None
    expires = row["expires_at"] if row["expires_at"].tzinfo else row["expires_at"].replace(tzinfo=at.tzinfo)
    if expires <= at:
        return None
    conn.execute(tokens.update().where(tokens.c.token_sha256 == row["token_sha256"]).values(used_at=at))
    return str(row["account_id"])


def verify(conn: Connection, secret: str, at: datetime, client: str | None = None) -> bool:
    account_id = use_token(conn, secret, "verify", at)
    if account_id is None:
        return False
    conn.execute(accounts.update().where(accounts.c.id == account_id, accounts.c.verified_at.is_(None))
                 .values(verified_at=at))
    log(conn, account_id, "verified", at, client=client)
    return True


def request_reset(conn: Connection, email: str, at: datetime, base_url: str) -> None:
    """Send a reset link when the account exists; the page answers the same either way."""
    try:
        email = normalise_email(email)
    except Invalid:
        return
    account_id = conn.execute(sa.select(accounts.c.id).where(accounts.c.email == email)).scalar()
    if account_id is None:
        return
    secret = _token(conn, account_id, "reset", at)
    enqueue(conn, "portal_reset", email, {"hours": TOKEN_HOURS["reset"], "link": f"{base_url}/portal/reset/{secret}"},
            dedup_key=f"portal_reset:{_hash(secret)[:32]}", now=at)


def reset_password(conn: Connection, secret: str, password: str, at: datetime, client: str | None = None) -> bool:
    from cloud.web.sessions import end_all

    account_id = use_token(conn, secret, "reset", at)
    if account_id is None:
        return False
    email = conn.execute(sa.select(accounts.c.email).where(accounts.c.id == account_id)).scalar_one()
    credentials.set_password(conn, audience=AUDIENCE, subject=account_id, login=email, password=password, now=at)
    # A reset also confirms the address (the link reached it).
    conn.execute(accounts.update().where(accounts.c.id == account_id, accounts.c.verified_at.is_(None))
                 .values(verified_at=at))
    end_all(conn, audience=AUDIENCE, subject=account_id)
    log(conn, account_id, "password_reset", at, client=client)
    return True


def add_contract(conn: Connection, account_id: str, contract_id: str, proof: str, at: datetime,
                 client: str | None = None) -> str:
    contract = check_proof(conn, contract_id, proof, at)
    _link(conn, account_id, contract, at, client)
    return str(contract["id"])


def may_sign_in(conn: Connection, account_id: str) -> str | None:
    verified = conn.execute(sa.select(accounts.c.verified_at).where(accounts.c.id == account_id)).first()
    if verified is None:
        return "Esta cuenta no existe."
    if verified.verified_at is None:
        return "Confirme primero su correo con el enlace que le enviamos."
    return None


def contracts_of(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(links.c.contract_id, links.c.municipality)
                                          .where(links.c.account_id == account_id)
                                          .order_by(links.c.contract_id)).mappings()]


def linked(conn: Connection, account_id: str, contract_id: str) -> str | None:
    """The contract's municipality when the account holds it, else None."""
    return conn.execute(sa.select(links.c.municipality).where(links.c.account_id == account_id,
                                                              links.c.contract_id == contract_id)).scalar()
