"""Enrolment of a handheld: turn a credential from the cloud or the zone gateway into a node.

The credential is what `aquacis cloud add-node --kind handheld` prints (JSON with token,
site_id, role, municipality, zone), pasted whole or as base64url of that JSON. A short
one-time code is exchanged first at `POST {server}/api/v2/enrol` when the server offers it
(docs/tui.md). The credential is checked with one small pull before anything is written, so
a bad code leaves no half-enrolled store behind; then the store is created with the node's
site_id and the scope's reference data is downloaded.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edge.store import EdgeStore
from edge.sync_client import PeerRefused, Unreachable
from sync import messages, wire

from .repository import Enrolment, Repository, read_enrolment
from .syncer import Outcome, TransportFactory, close_transport, http_transport, is_credential_error, sync_once

FIELD_ROLES = ("handheld", "reader", "technician")


class EnrolError(RuntimeError):
    """Enrolment failed; `key`/`params` form the message shown to the user."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(f"{key} {params}")
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Credential:
    token: str
    site_id: str
    role: str
    municipality: str
    zone: str


def parse_credential(text: str) -> Credential | None:
    """A credential pasted as JSON or base64url(JSON); None when the text is neither."""
    raw = text.strip()
    data: Any = None
    try:
        data = json.loads(raw)
    except ValueError:
        try:
            padded = raw + "=" * (-len(raw) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
    if not isinstance(data, dict) or not data.get("token") or not data.get("site_id"):
        return None
    return Credential(str(data["token"]), str(data["site_id"]), str(data.get("role") or "handheld"),
                      str(data.get("municipality") or ""), str(data.get("zone") or ""))


def exchange_code(url: str, code: str) -> Credential:
    """Trade a one-time code for a credential at the server's enrolment endpoint."""
    if not url.startswith(("http://", "https://")):
        raise EnrolError("err_enrol_refused", reason="one-time codes need an HTTP server")
    try:
        with httpx.Client(base_url=url, timeout=15.0) as client:
            resp = client.post("/api/v2/enrol", json={"code": code, "kind": "handheld"})
    except httpx.HTTPError as exc:
        raise EnrolError("err_enrol_unreachable", url=url, reason=type(exc).__name__) from exc
    if resp.status_code == 200:
        cred = parse_credential(resp.text)
        if cred is not None:
            return cred
    reason = f"HTTP {resp.status_code}"
    if resp.status_code in (404, 405):
        reason += " (sin código de un solo uso: pegue la credencial JSON del equipo)"
    raise EnrolError("err_enrol_refused", reason=reason)


def check_credential(url: str, cred: Credential, transport_factory: TransportFactory) -> None:
    """One tiny pull: proves the token is accepted before the store is created."""
    transport = transport_factory(url)
    body = wire.encode(messages.PullRequest(site_id=cred.site_id, cursor=None, max_rows=1))
    headers = {"Content-Type": wire.CONTENT_TYPE, "Accept": wire.CONTENT_TYPE, "Authorization": f"Bearer {cred.token}"}
    try:
        status, data = transport.post("/api/v2/sync/pull", body, headers)
    except Unreachable as exc:
        raise EnrolError("err_enrol_unreachable", url=url, reason=str(exc) or "unreachable") from exc
    finally:
        close_transport(transport)
    if status != 200:
        refused = PeerRefused(status, data[:200].decode("utf-8", "replace"))
        if is_credential_error(refused) or 400 <= status < 500:
            raise EnrolError("err_enrol_refused", reason=f"HTTP {status}")
        raise EnrolError("err_enrol_unreachable", url=url, reason=f"HTTP {status}")


def enrol(
    db_path: str | Path,
    server_url: str,
    credential: str,
    *,
    gateway_url: str = "",
    reader_id: str = "",
    transport_factory: TransportFactory = http_transport,
) -> tuple[Repository, Outcome]:
    """Enrol this handheld and download its scope. Returns the open repository and the first sync."""
    url = server_url.strip().rstrip("/")
    gateway = gateway_url.strip().rstrip("/")
    if not url or not credential.strip():
        raise EnrolError("err_enrol_fields")
    for u in (url, gateway):
        if u and not u.startswith(("http://", "https://")):
            raise EnrolError("err_url_invalid")
    cred = parse_credential(credential) or exchange_code(url, credential.strip())
    if cred.role not in FIELD_ROLES:
        raise EnrolError("err_enrol_role", role=cred.role)
    check_credential(url, cred, transport_factory)
    existing = read_enrolment(db_path)
    if existing is not None and existing.site_id != cred.site_id:
        raise EnrolError("err_enrol_refused", reason=f"this store belongs to site {existing.site_id}")
    store = EdgeStore.open(db_path, site_id=cred.site_id)
    repo = Repository(store)
    # the server given is the cloud unless the credential came from the zone's gateway (then
    # the caller passes it as gateway_url too): both are kept, the gateway is tried first
    repo.save_enrolment(Enrolment(
        site_id=cred.site_id, token=cred.token, role=cred.role, municipality=cred.municipality, zone=cred.zone,
        cloud_url=url, gateway_url=gateway, reader_id=reader_id.strip(),
    ))
    outcome = sync_once(repo, transport_factory)
    repo.reload()
    return repo, outcome
