"""Sync rounds for the handheld: gateway first, cloud as fallback, one bounded attempt each.

A round pushes the outbox batch by batch (rows leave the outbox only on the receiver's
post-commit answer, via EdgeStore.acknowledge) and then pulls until the peer says there is
no more (rows and cursor in one transaction, via EdgeStore.apply_pull). Every attempt is
logged in the app's local sync log, so the screen can say when and with whom it last worked.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from sync import wire

from .repository import Enrolment, Repository, SyncRecord

ClientFactory = Callable[[str], httpx.Client]
TIMEOUT_S = 15.0


class CredentialRejected(RuntimeError):
    """The peer answered 401/403: the node token expired or was revoked."""


class PeerError(RuntimeError):
    """The peer could not be reached or answered with an error; `reason` is shown to the user."""


@dataclass(frozen=True)
class Peer:
    kind: str  # gateway | cloud
    url: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    peer: Peer | None
    pushed: int = 0
    pulled: int = 0
    refused: int = 0
    error: str = ""
    credential_rejected: bool = False
    attempts: tuple[SyncRecord, ...] = ()


def default_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=TIMEOUT_S)


def peers(enrol: Enrolment) -> list[Peer]:
    """The gateway on the local network first, the cloud as fallback."""
    out = []
    if enrol.gateway_url:
        out.append(Peer("gateway", enrol.gateway_url.rstrip("/")))
    if enrol.cloud_url:
        out.append(Peer("cloud", enrol.cloud_url.rstrip("/")))
    return out


def reachable(url: str, timeout: float = 0.5) -> bool:
    """A cheap TCP probe, so automatic sync does not wait on a peer that is not there."""
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _post(client: httpx.Client, path: str, msg: wire.Message, token: str) -> Any:
    try:
        resp = client.post(path, content=wire.encode(msg),
                           headers={"Content-Type": wire.CONTENT_TYPE, "Accept": wire.CONTENT_TYPE,
                                    "Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise PeerError(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc
    if resp.status_code in (401, 403):
        raise CredentialRejected(_reason(resp))
    if resp.status_code != 200:
        raise PeerError(f"HTTP {resp.status_code}: {_reason(resp)}")
    try:
        return wire.decode(resp.content)
    except wire.WireError as exc:
        raise PeerError(f"bad answer: {exc}") from exc


def _reason(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        return str(data.get("detail") or data.get("error") or data)[:200]
    except ValueError:
        return resp.text[:200]


def run_round(store: Any, client: httpx.Client, token: str, max_batches: int = 10_000) -> tuple[int, int, int]:
    """Push everything queued, then pull everything new. Returns (pushed, pulled, refused)."""
    pushed = refused = pulled = 0
    last_head: int | None = None
    for _ in range(max_batches):
        batch = store.next_push_batch()
        if batch is None:
            break
        head = batch.changes[0].seq if batch.changes else None
        if head is not None and head == last_head:
            raise PeerError("the peer did not acknowledge the batch")
        last_head = head
        result = _post(client, "/api/v2/sync/push", batch, token)
        if not isinstance(result, wire.PushResult):
            raise PeerError("unexpected answer to push")
        store.acknowledge(result)
        pushed += len(batch.changes)
        refused += len(result.refusals)
    for _ in range(max_batches):
        req = wire.PullRequest(site_id=store.site_id, cursor=store.pull_cursor())
        answer = _post(client, "/api/v2/sync/pull", req, token)
        if not isinstance(answer, wire.PullBatch):
            raise PeerError("unexpected answer to pull")
        store.apply_pull(answer)
        pulled += len(answer.rows)
        refused += len(answer.refusals)
        if not answer.more:
            break
    return pushed, pulled, refused


def sync_once(repo: Repository, client_factory: ClientFactory = default_client, *, probe: bool = False,
              only: str | None = None) -> Outcome:
    """Try each peer in order until one round completes; log every attempt."""
    enrol = repo.enrolment()
    if enrol is None:
        return Outcome(False, None, error="not enrolled")
    attempts: list[SyncRecord] = []
    last_error = ""
    rejected = False
    for peer in peers(enrol):
        if only and peer.kind != only:
            continue
        if probe and not reachable(peer.url):
            continue
        try:
            with client_factory(peer.url) as client:
                pushed, pulled, refused = run_round(repo.store, client, enrol.token)
        except CredentialRejected as exc:
            rejected = True
            last_error = f"credential: {exc}"
        except PeerError as exc:
            last_error = str(exc)
        else:
            rec = SyncRecord(repo.clock(), peer.kind, peer.url, True, pushed, pulled, refused, "")
            repo.log_sync(rec)
            attempts.append(rec)
            return Outcome(True, peer, pushed, pulled, refused, attempts=tuple(attempts))
        rec = SyncRecord(repo.clock(), peer.kind, peer.url, False, 0, 0, 0, last_error[:300])
        repo.log_sync(rec)
        attempts.append(rec)
    return Outcome(False, None, error=last_error, credential_rejected=rejected, attempts=tuple(attempts))
