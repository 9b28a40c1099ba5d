"""Work orders offline: start, note, replacement, complete / impossible, through the status lattice."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input
from tui_helpers import SITE

from edge.store import EdgeStore
from sync import messages
from sync.changes import Cell, RowState
from sync.hlc import pack
from tui.app import ReaderApp
from tui.repository import OrderClosed, Repository
from tui.screens.dialogs import ConfirmScreen
from tui.screens.orders import OrderScreen, OrdersScreen, PromptScreen, ReplacementScreen

pytestmark = pytest.mark.anyio


async def type_text(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    for ch in text:
        await pilot.press(ch if ch != " " else "space")


async def test_replacement_order_completed_offline(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, OrdersScreen)
        assert app.screen.query_one("#orders").row_count == 3
        await pilot.press("enter")
        assert isinstance(app.screen, OrderScreen) and app.screen.order_id == "WO000001"
        await pilot.press("t")  # complete before start: refused with a hint
        await pilot.pause()
        await pilot.press("i")
        await pilot.press("n")
        assert isinstance(app.screen, PromptScreen)
        await type_text(pilot, "Medidor con fuga en la tuerca")
        await pilot.press("enter")
        await pilot.press("t")  # complete before the replacement is recorded: refused, and why
        await pilot.pause()
        assert any("registre primero el reemplazo" in n.message for n in app._notifications)
        assert app.repo.work_order("WO000001")["status"] == "in_progress"
        await pilot.press("m")
        assert isinstance(app.screen, ReplacementScreen)
        await type_text(pilot, "1030.250")
        await pilot.press("enter")
        await type_text(pilot, "WMX0001")
        await pilot.press("enter")
        await type_text(pilot, "abc")  # not a number: explained, nothing saved
        await pilot.press("enter")
        await pilot.pause()
        assert "no es una lectura válida" in str(app.screen.query_one(".error").render())
        app.screen.query_one("#new", Input).value = "0.002"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, OrderScreen)
        await pilot.press("t")
        await pilot.pause()
        # completing asks first; "no" leaves the order open
        assert isinstance(app.screen, ConfirmScreen) and "Reposición de medidor" in str(
            app.screen.query_one("#confirm-text").render())
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, OrderScreen)
        assert (app.repo.work_order("WO000001") or {})["status"] == "in_progress"
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
    store = EdgeStore.open(handheld, site_id=SITE)
    order = store.get("work_orders", "WO000001")
    assert order is not None and order["status"] == "completed" and order["result"]["outcome"] == "done"
    rep = order["result"]["replacement"]
    assert (rep["old_serial"], rep["old_final_l"], rep["new_serial"], rep["new_initial_l"]) == (
        "WM00000001", 1_030_250, "WMX0001", 2)
    kinds = [e["kind"] for e in sorted(store.rows("work_order_events"), key=lambda e: e["at"])]
    assert kinds == ["started", "note", "replacement", "completed"]
    # the replacement's readings are the cloud's to record (under these device-made ids) once it
    # has applied the replacement; the new meter is unknown to the registry until then
    assert store.rows("readings") == []
    assert rep["old_final_reading_id"] != rep["new_initial_reading_id"]
    assert order["notes"] == "Medidor con fuga en la tuerca"
    store.close()


async def test_report_impossible_and_closed_order_cannot_change(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await pilot.press("down")
        await pilot.press("enter")
        assert isinstance(app.screen, OrderScreen) and app.screen.order_id == "WO000002"
        await pilot.press("i")
        await pilot.press("x")
        await type_text(pilot, "Predio abandonado")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("n")  # closed now: a note is refused with the reason
        await type_text(pilot, "otra")
        await pilot.press("enter")
        await pilot.pause()
        assert any("ya está terminada" in n.message for n in app._notifications)
    store = EdgeStore.open(handheld, site_id=SITE)
    order = store.get("work_orders", "WO000002")
    assert order is not None and order["status"] == "completed"
    assert order["result"] == {"outcome": "impossible", "reason": "Predio abandonado"}
    store.close()


def test_stale_assigned_from_a_pull_never_reopens_a_completed_order(repo: Repository) -> None:
    repo.start_order("WO000003")
    repo.complete_order("WO000003")
    later = pack(repo.store.hlc.wall() + 60_000)  # even a newer stamp cannot move the lattice down
    stale = RowState("work_orders", "WO000003", {"status": Cell("assigned", later, "some-dispatcher")}, 1)
    repo.store.apply_pull(messages.PullBatch(rows=[stale], cursor={"n": 2}), "cloud")
    assert repo.work_order("WO000003")["status"] == "completed"  # type: ignore[index]
    with pytest.raises(OrderClosed):
        repo.add_note("WO000003", "late")
    assert "WO000003" not in {o["id"] for o in repo.work_orders()}
