"""Helpers shared by the reader app tests (imported by name: tests/tui is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.store import EdgeStore
from tui.repository import Enrolment, Repository
from tui.sample import MUNICIPALITY, ZONE, load_sample

SITE = "0190a000-0000-7000-8000-0000000000aa"


def make_handheld(path: Path, *, cloud_url: str = "http://127.0.0.1:9", gateway_url: str = "",
                  token: str = "test-token", site_id: str = SITE, **sample: object) -> None:
    store = EdgeStore.open(path, site_id=site_id)
    load_sample(store, **sample)
    repo = Repository(store)
    repo.save_enrolment(Enrolment(site_id=site_id, token=token, role="handheld", municipality=MUNICIPALITY,
                                  zone=ZONE, cloud_url=cloud_url, gateway_url=gateway_url, reader_id="L-001"))
    store.close()



def readings(path: Path) -> list[dict[str, Any]]:
    store = EdgeStore.open(path, site_id=SITE)
    try:
        return store.rows("readings")
    finally:
        store.close()


class GatewayPeer:
    """A real zone-gateway sync hub (edge.hub.Hub on its own EdgeStore file), reached in-process.

    Its store holds the zone's reference data as if pulled from the cloud; the handheld is
    registered to it with a token, exactly as the gateway does for the handhelds of its zone.
    """

    URL = "http://gateway.test:8080"

    def __init__(self, path: Path, token: str = "hh-token", site_id: str = SITE, **sample: Any) -> None:
        from edge.hub import Hub

        self.store = EdgeStore.open(path, site_id="0190a000-0000-7000-8000-0000000000ee")
        load_sample(self.store, **sample)
        self.hub = Hub(self.store)
        self.token = token
        self.hub.register_node(token, site_id, "handheld", MUNICIPALITY, ZONE)
        self.down = False

    def transport(self) -> Any:
        from edge.sync_client import CallableTransport, Unreachable

        def handler(path: str, token: str | None, body: bytes) -> tuple[int, bytes]:
            if self.down:
                raise Unreachable("gateway down")
            return self.hub.handle(path, token, body)

        return CallableTransport(handler)

    def credential(self) -> str:
        import json

        return json.dumps({"token": self.token, "site_id": SITE, "role": "handheld",
                           "municipality": MUNICIPALITY, "zone": ZONE})

    def close(self) -> None:
        self.store.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: a real refused connection, not a fake."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
