"""Enrolment and sync against a real sync peer (the zone gateway's hub on its own SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import SITE, GatewayPeer, closed_port_url

from edge.store import EdgeStore
from edge.sync_client import Transport
from tui.app import ReaderApp
from tui.enrol import EnrolError, enrol, read_enrolment
from tui.repository import Enrolment, Repository
from tui.screens.refusals import RefusalsScreen
from tui.screens.routes import RoutesScreen
from tui.syncer import http_transport, sync_once

pytestmark = pytest.mark.anyio


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayPeer]:
    gw = GatewayPeer(tmp_path / "gateway.sqlite")
    yield gw
    gw.close()


def factory(gw: GatewayPeer) -> Any:
    def make(url: str) -> Transport:
        return gw.transport() if url == GatewayPeer.URL else http_transport(url)

    return make


def test_enrol_downloads_the_scope_then_readings_sync_to_the_gateway(tmp_path: Path, gateway: GatewayPeer) -> None:
    path = tmp_path / "hh.sqlite"
    repo, outcome = enrol(path, GatewayPeer.URL, gateway.credential(), reader_id="L-007",
                          transport_factory=factory(gateway))
    assert outcome.ok and outcome.peer is not None and outcome.pulled > 0
    assert repo.store.site_id == SITE
    assert {r.id for r in repo.routes()} == {"R01", "R02"}
    assert [c.code for c in repo.observation_codes()][:3] == ["01", "02", "03"]
    assert len(repo.work_orders()) == 3
    # offline work, then a sync
    ids = [repo.record_reading(m.serial, 1_020_000 + i) for i, m in enumerate(repo.route_meters("R01")[:5])]
    assert repo.pending_count() == 5
    out = sync_once(repo, factory(gateway))
    assert out.ok and out.pushed == 5 and repo.pending_count() == 0
    at_gateway = {r["id"]: r for r in gateway.store.rows("readings")}
    assert set(ids) <= set(at_gateway) and at_gateway[ids[0]]["reader_id"] == "L-007"
    # the gateway relays them unchanged (origin site and seq) through its own outbox
    batch = gateway.store.next_push_batch()
    assert batch is not None and {c.site_id for c in batch.changes} == {SITE}
    # syncing again sends nothing twice
    again = sync_once(repo, factory(gateway))
    assert again.ok and again.pushed == 0 and len(gateway.store.rows("readings")) == 5
    repo.store.close()


def test_enrol_with_a_bad_credential_leaves_no_store(tmp_path: Path, gateway: GatewayPeer) -> None:
    path = tmp_path / "hh.sqlite"
    bad = gateway.credential().replace(gateway.token, "wrong-token")
    with pytest.raises(EnrolError) as err:
        enrol(path, GatewayPeer.URL, bad, transport_factory=factory(gateway))
    assert err.value.key == "err_enrol_refused"
    assert not path.exists() and read_enrolment(path) is None
    with pytest.raises(EnrolError) as err2:
        enrol(path, "ftp://x", gateway.credential(), transport_factory=factory(gateway))
    assert err2.value.key == "err_url_invalid"
    with pytest.raises(EnrolError) as err3:
        enrol(path, closed_port_url(), gateway.credential())
    assert err3.value.key in ("err_enrol_unreachable", "err_enrol_refused")


def _enrolled(tmp_path: Path, gateway: GatewayPeer, gateway_url: str, cloud_url: str) -> Repository:
    path = tmp_path / "hh.sqlite"
    repo, _ = enrol(path, GatewayPeer.URL, gateway.credential(), transport_factory=factory(gateway))
    e = repo.enrolment()
    assert e is not None
    repo.save_enrolment(Enrolment(**{**e.__dict__, "gateway_url": gateway_url, "cloud_url": cloud_url}))
    return repo


def test_gateway_preferred_and_cloud_fallback(tmp_path: Path, gateway: GatewayPeer) -> None:
    # the real hub answers as "cloud" here; the "gateway" is a loopback port nobody listens on
    repo = _enrolled(tmp_path, gateway, gateway_url=closed_port_url(), cloud_url=GatewayPeer.URL)
    repo.record_reading("WM00000003", 1_021_000)
    out = sync_once(repo, factory(gateway))
    assert out.ok and out.peer is not None and out.peer.kind == "cloud"
    assert [a.peer for a in out.attempts] == ["gateway", "cloud"] and not out.attempts[0].ok
    last = repo.last_sync()
    assert last is not None and last.peer == "cloud" and last.pushed == 1
    # both down: nothing lost, the failure is logged with a reason
    gateway.down = True
    repo.record_reading("WM00000004", 1_022_000)
    out = sync_once(repo, factory(gateway))
    assert not out.ok and repo.pending_count() == 1 and out.error
    repo.store.close()


def test_refusals_are_kept_and_the_rest_of_the_queue_goes_through(tmp_path: Path, gateway: GatewayPeer) -> None:
    repo = _enrolled(tmp_path, gateway, gateway_url=GatewayPeer.URL, cloud_url="")
    # a handheld may not re-prioritise an order (field not writable for its role)
    repo.store.set_fields("work_orders", "WO000002", {"priority": "urgent"})
    rid = repo.record_reading("WM00000005", 1_020_500)
    out = sync_once(repo, factory(gateway))
    assert out.ok and out.refused == 1
    (refusal,) = repo.refusals()
    assert refusal["code"] == "field_not_writable" and refusal["table"] == "work_orders"
    assert refusal["reason"]
    assert rid in {r["id"] for r in gateway.store.rows("readings")}
    assert repo.pending_count() == 0
    repo.store.close()


async def test_sync_key_updates_status_and_refusals_screen(tmp_path: Path, gateway: GatewayPeer) -> None:
    repo = _enrolled(tmp_path, gateway, gateway_url=GatewayPeer.URL, cloud_url="")
    repo.store.set_fields("work_orders", "WO000002", {"priority": "urgent"})
    repo.record_reading("WM00000006", 1_020_500)
    path = Path(repo.store.conn.execute("PRAGMA database_list").fetchone()[2])
    repo.store.close()
    app = ReaderApp(path, transport_factory=factory(gateway), auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, RoutesScreen)
        bar = str(app.screen.query_one("#syncbar").render())
        assert "Pendientes: 2" in bar
        await pilot.press("f5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        bar = str(app.screen.query_one("#syncbar").render())
        assert "Pendientes: 0" in bar and "con puerta de enlace" in bar and "Rechazos: 1" in bar
        await pilot.press("r")
        assert isinstance(app.screen, RefusalsScreen)
        row = app.screen.query_one("#refusals").get_row_at(0)
        assert row[0] == "órdenes" and row[1] == "campo que no puede cambiar"  # in the reader's words
        assert str(row[2]) == "avise en oficina"  # what to do, in Spanish
        await pilot.press("enter")  # the server's own (technical) reason, to read out to the office
        await pilot.pause()
        (note,) = [n for n in app._notifications if "Detalle del servidor" in str(n.message)]
        assert str(note.message).removeprefix("Detalle del servidor: ") == repo_reason(path)


async def test_expired_credential_is_explained_and_data_kept(tmp_path: Path, gateway: GatewayPeer) -> None:
    repo = _enrolled(tmp_path, gateway, gateway_url=GatewayPeer.URL, cloud_url="")
    repo.record_reading("WM00000007", 1_020_700)
    path = Path(repo.store.conn.execute("PRAGMA database_list").fetchone()[2])
    repo.store.close()
    gateway.hub.register_node("rotated-token", SITE, "handheld", "EXP-01", "EXP-01-Z01")  # old token revoked
    app = ReaderApp(path, transport_factory=factory(gateway), auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.pause()
        bar = str(app.screen.query_one("#syncbar").render())
        assert "credencial del equipo expiró" in bar and "Pendientes: 1" in bar
    store = EdgeStore.open(path, site_id=SITE)
    assert store.pending_count() == 1 and len(store.rows("readings")) == 1
    store.close()


async def test_first_start_enrols_from_the_screen(tmp_path: Path, gateway: GatewayPeer) -> None:
    path = tmp_path / "new.sqlite"
    app = ReaderApp(path, transport_factory=factory(gateway), auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        from textual.widgets import Input

        from tui.screens.enrol import EnrolScreen

        assert isinstance(app.screen, EnrolScreen)
        app.screen.query_one("#url", Input).value = GatewayPeer.URL
        await pilot.press("enter")  # to the code field
        app.screen.query_one("#code", Input).value = "{broken"
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        # not a credential: it is tried as a one-time code at the server, which is not reachable
        assert "No se pudo conectar con http://gateway.test" in str(app.screen.query_one("#error").render())
        assert not path.exists()
        app.screen.query_one("#code", Input).value = gateway.credential()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen)
        assert app.screen.query_one("#routes").row_count == 2


def repo_reason(path: Path) -> str:
    """The refusal's reason as the server sent it, straight from the handheld's store."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        (reason,) = conn.execute("SELECT reason FROM _refusals").fetchone()
    return str(reason)
