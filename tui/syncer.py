"""Sync rounds for the handheld: gateway first, cloud as fallback, one bounded attempt each.

Each round is an edge.sync_client.SyncClient round (push the outbox, acknowledged only by the
receiver's post-commit answer; then pull until up to date, rows and cursor in one transaction)
with a pull cursor per peer kind. The app does not retry with backoff inside a round: the reader
is waiting, so an unreachable peer moves on to the next one at once, and the app's timer tries
again later. Every attempt is logged locally, so the screen can say when and with whom it last
worked.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from edge.sync_client import HttpxTransport, PeerRefused, SyncClient, Transport, Unreachable

from .repository import Enrolment, Repository, SyncRecord

TransportFactory = Callable[[str], Transport]
TIMEOUT_S = 15.0


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


def http_transport(url: str) -> Transport:
    transport = HttpxTransport.to(url, timeout=TIMEOUT_S)
    transport.owned = True  # type: ignore[attr-defined]  # made here, so closed here
    return transport


def close_transport(transport: Transport) -> None:
    """Close clients this module opened; a transport lent by the caller stays open."""
    client = getattr(transport, "client", None)
    if client is not None and getattr(transport, "owned", False):
        client.close()


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
    if u.scheme not in ("http", "https"):
        return True  # in-process peers (tests) are always "there"
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def is_credential_error(exc: PeerRefused) -> bool:
    return exc.status in (401, 403)


def sync_once(repo: Repository, transport_factory: TransportFactory = http_transport, *, probe: bool = False,
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
        transport = transport_factory(peer.url)
        client = SyncClient(repo.store, transport, enrol.token, peer=peer.kind)
        try:
            stats = client.sync()
        except PeerRefused as exc:
            rejected = rejected or is_credential_error(exc)
            last_error = f"HTTP {exc.status}: {exc.reason}"
        except Unreachable as exc:
            last_error = str(exc) or "unreachable"
        else:
            rec = SyncRecord(repo.clock(), peer.kind, peer.url, True, stats.pushed, stats.pulled_rows,
                             stats.refused, "")
            repo.log_sync(rec)
            attempts.append(rec)
            return Outcome(True, peer, stats.pushed, stats.pulled_rows, stats.refused, attempts=tuple(attempts))
        finally:
            close_transport(transport)
        rec = SyncRecord(repo.clock(), peer.kind, peer.url, False, client.stats.pushed, client.stats.pulled_rows,
                         client.stats.refused, last_error[:300])
        repo.log_sync(rec)
        attempts.append(rec)
    return Outcome(False, None, error=last_error, credential_rejected=rejected, attempts=tuple(attempts))
