"""The local sync hub: POST /api/v2/sync/push and /pull for the handhelds of this zone.

The judging and merging is the sync engineer's shared server logic (`edge.hub.Hub` on
`sync.server`), on the gateway's own store; accepted handheld changes are appended unchanged
(origin site_id and seq) to the gateway's outbox, which the uplink relays to the cloud.

Who may sync here: a handheld node registered in the cloud for this gateway's municipality and
zone. The first time a token is seen, the hub asks the cloud (`GET /api/v2/whoami` with that
token) and remembers the answer (hashed token) so the handheld keeps syncing through outages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import cbor2
import httpx
import structlog

from edge.hub import Hub, HubError
from gateway.httpd import Response
from gateway.store import open_edge

log = structlog.get_logger("gateway.hub")

CBOR = "application/cbor"


def _err(status: int, reason: str) -> Response:
    return status, CBOR, cbor2.dumps({"error": reason})


class GatewayHub:
    def __init__(self, db: str, site_id: str, municipality: str, zone: str, cloud: str | None,
                 on_relay: Callable[[], None] | None = None,
                 whoami: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.store = open_edge(db, site_id=site_id)
        self.hub = Hub(self.store)
        self.municipality = municipality
        self.zone = zone
        self.cloud = cloud.rstrip("/") if cloud else None
        self.on_relay = on_relay
        self._whoami = whoami or self._cloud_whoami
        self._lock = threading.Lock()  # one request at a time on this connection

    def routes(self) -> dict[str, Callable[[bytes, dict[str, str]], Response]]:
        return {"/api/v2/sync/push": self.handle_push, "/api/v2/sync/pull": self.handle_pull}

    def register(self, token: str, site_id: str, role: str = "handheld") -> None:
        """Admit a handheld of this zone without asking the cloud (installation, tests)."""
        self.hub.register_node(token, site_id, role, self.municipality, self.zone)

    def _cloud_whoami(self, token: str) -> dict[str, Any]:
        if not self.cloud:
            raise HubError(401, "unknown token")
        try:
            r = httpx.get(self.cloud + "/api/v2/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        except httpx.HTTPError as e:
            raise HubError(503, "unknown handheld and the cloud is unreachable; sync once with the cloud") from e
        if r.status_code in (401, 403):
            raise HubError(401, "token refused by the cloud")
        if r.status_code != 200:
            raise HubError(503, f"cloud answered {r.status_code} while checking the token")
        return dict(r.json())

    def _admit(self, token: str | None) -> None:
        if not token:
            raise HubError(401, "missing bearer token")
        try:
            self.hub.authenticate(token)
            return
        except HubError:
            pass
        who = self._whoami(token)
        if who.get("kind") != "node" or who.get("role") != "handheld":
            raise HubError(403, "only handheld nodes sync with a zone gateway")
        if who.get("municipality") != self.municipality or who.get("zone") != self.zone:
            raise HubError(403, f"handheld belongs to {who.get('municipality')}/{who.get('zone')}, "
                                f"not this gateway's zone {self.municipality}/{self.zone}")
        if self.hub.retired(str(who["site_id"])):
            # unregistered here (`aquacis gateway handheld unregister`): the cloud's word is not enough
            log.warning("retired_handheld_refused", site_id=who["site_id"])
            raise HubError(403, "this handheld was unregistered from this gateway; register it again to sync here")
        self.hub.register_node(token, str(who["site_id"]), "handheld", self.municipality, self.zone)
        log.info("handheld_admitted", site_id=who["site_id"])

    def _handle(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        with self._lock:
            try:
                self._admit(token)
            except HubError as e:
                return _err(e.status, e.reason)
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != CBOR:
                return _err(415, f"Content-Type must be {CBOR}, got {ctype or 'none'}")
            status, out = self.hub.handle(path, token, body)
        if status == 200 and path.endswith("/push") and self.on_relay:
            self.on_relay()  # relayed changes are in the outbox: push them up soon
        return status, CBOR, out

    def handle_push(self, body: bytes, headers: dict[str, str]) -> Response:
        return self._handle("/api/v2/sync/push", body, headers)

    def handle_pull(self, body: bytes, headers: dict[str, str]) -> Response:
        return self._handle("/api/v2/sync/pull", body, headers)

    def close(self) -> None:
        self.store.close()
