"""`aquacis gateway handheld list|unregister` against a gateway hub serving real HTTP: a retired
handheld's token is refused at once, even though the cloud still vouches for it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from aquacis.cli import app as cli_app
from edge.hub import Hub, HubError
from edge.store import EdgeStore
from edge.sync_client import HttpxTransport, SyncClient
from gateway.httpd import GatewayHTTP
from gateway.hub import GatewayHub
from sync import messages, wire

MUNI, ZONE = "EXP-01", "EXP-01-Z01"
GW_SITE = "0190aaaa-0000-7000-8000-00000000a001"
HH_SITE = "0190aaaa-0000-7000-8000-00000000b001"
runner = CliRunner()


@pytest.fixture
def gateway(tmp_path: Path) -> Any:
    db = str(tmp_path / "gw.db")
    EdgeStore.open(db, site_id=GW_SITE).close()

    def whoami(token: str) -> dict[str, Any]:  # test double of the cloud's GET /api/v2/whoami: still active there
        if token != "hh-token":
            raise HubError(401, "token refused by the cloud")
        return {"kind": "node", "role": "handheld", "site_id": HH_SITE, "municipality": MUNI, "zone": ZONE}

    hub = GatewayHub(db, GW_SITE, MUNI, ZONE, cloud=None, whoami=whoami)
    http = GatewayHTTP("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), hub.routes())
    http.start()
    yield db, hub, f"http://127.0.0.1:{http.port}"
    http.stop()
    hub.close()


def pull(url: str, token: str) -> httpx.Response:
    return httpx.post(url + "/api/v2/sync/pull", content=wire.encode(messages.PullRequest(HH_SITE)),
                      headers={"Authorization": f"Bearer {token}", "Content-Type": wire.CONTENT_TYPE})


def test_unregistered_handheld_is_refused_by_the_hub(gateway: Any, tmp_path: Path) -> None:
    db, hub, url = gateway
    hh = EdgeStore.open(str(tmp_path / "hh.db"), site_id=HH_SITE)
    hh.insert_facts("readings", [{"meter_serial": "WM-1", "taken_at": 1_790_000_000_000, "value_l": 1,
                                  "source": "handheld", "municipality": MUNI, "zone": ZONE}])
    SyncClient(hh, HttpxTransport.to(url), "hh-token", peer="gateway").sync()  # admitted on the cloud's word
    out = runner.invoke(cli_app, ["gateway", "handheld", "list", "--db", db])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)["handhelds"]
    assert [(h["site_id"], h["retired"]) for h in listed] == [(HH_SITE, False)]
    assert listed[0]["last_pull_at_ms"] is not None and listed[0]["zone"] == ZONE

    # the daemon keeps running; the command writes beside it
    out = runner.invoke(cli_app, ["gateway", "handheld", "unregister", HH_SITE, "--db", db])
    assert out.exit_code == 0, out.output
    again = runner.invoke(cli_app, ["gateway", "handheld", "unregister", HH_SITE, "--db", db])
    assert again.exit_code == 1 and "already" in again.stderr
    r = pull(url, "hh-token")
    assert r.status_code == 403 and "unregistered" in cbor2.loads(r.content)["error"]
    # the hub itself (without the gateway's admission step) no longer knows the token
    status, body = Hub(EdgeStore.open(db)).handle("/api/v2/sync/pull", "hh-token",
                                                  wire.encode(messages.PullRequest(HH_SITE)))
    assert status == 401
    listed = json.loads(runner.invoke(cli_app, ["gateway", "handheld", "list", "--db", db]).stdout)["handhelds"]
    assert [(h["site_id"], h["retired"]) for h in listed] == [(HH_SITE, True)]
    with hub.store.transaction():
        n = hub.store.conn.execute("SELECT count(*) FROM _hub_cursors WHERE site_id = ?", (HH_SITE,)).fetchone()[0]
    assert n == 0  # no longer holds back purge or compaction

    # a deliberate registration (installation) lifts the retirement
    hub.register("hh-token", HH_SITE)
    assert pull(url, "hh-token").status_code == 200


def test_unregister_bad_input(gateway: Any, tmp_path: Path) -> None:
    db, _, _ = gateway
    out = runner.invoke(cli_app, ["gateway", "handheld", "unregister", "no-such-site", "--db", db])
    assert out.exit_code == 2 and "no handheld" in out.stderr
    missing = tmp_path / "nope.db"
    out = runner.invoke(cli_app, ["gateway", "handheld", "unregister", HH_SITE, "--db", str(missing)])
    assert out.exit_code == 2 and "no gateway database" in out.stderr
    assert not missing.exists()  # never creates an empty database
    out = runner.invoke(cli_app, ["gateway", "handheld", "unregister", "x" * 100, "--db", db])
    assert out.exit_code == 2
    for name, content in (("text.db", b"not a database"), ("other.db", None)):
        other = tmp_path / name
        if content is None:
            sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
        else:
            other.write_bytes(content)
        before = other.read_bytes()
        out = runner.invoke(cli_app, ["gateway", "handheld", "list", "--db", str(other)])
        assert out.exit_code == 2 and "no gateway database" in out.stderr
        assert other.read_bytes() == before  # another file is never turned into a node store
