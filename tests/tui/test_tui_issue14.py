"""The reader app as a reader needs it (issue 14): the one plausibility rule asks on every entry
path, a second entry is a correction, and the screens work at 80x24 in Spanish."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.widgets import DataTable, Input
from textual.widgets._footer import FooterKey
from tui_helpers import SITE, GatewayPeer, readings
from typer.testing import CliRunner

from edge.store import EdgeStore
from sync import messages
from sync.changes import Cell, RowState
from sync.hlc import pack
from tui.app import ReaderApp
from tui.cli import app as handheld_cli
from tui.sample import SERVER_SITE
from tui.screens.dialogs import ConfirmScreen, HelpScreen
from tui.screens.meter import MeterScreen
from tui.screens.orders import OrderScreen, OrdersScreen, PromptScreen
from tui.screens.reading import CheckScreen, ReadingScreen
from tui.screens.route import RouteScreen
from tui.screens.routes import RoutesScreen

pytestmark = pytest.mark.anyio


def registry_values(path: Path, values: dict[str, int]) -> None:
    """The registry's last value of some meters, undated, on DOM_MEDIO connections: what every
    seeded meter looks like once pulled (no `last_read_at`)."""
    store = EdgeStore.open(path, site_id=SITE)
    hlc = pack(store.hlc.wall() + 1000)
    rows = []
    for serial, value in values.items():
        n = int(serial[2:])
        rows.append(RowState("meters", f"M{n:07d}", {"last_value_l": Cell(value, hlc, SERVER_SITE),
                                                   "last_read_at": Cell(None, hlc, SERVER_SITE)}, 1))
        rows.append(RowState("service_points", f"SP{n:07d}", {"use_type": Cell("DOM_MEDIO", hlc, SERVER_SITE)}, 1))
    store.apply_pull(messages.PullBatch(rows=rows, cursor={"sample": 2}))
    store.close()


@pytest.fixture
def seeded(handheld: Path) -> Path:
    registry_values(handheld, {"WM00000001": 19_113, "WM00000002": 669_414})
    return handheld


async def type_text(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    for ch in text:
        await pilot.press(ch)


async def open_meter(pilot, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("enter")  # first route
    for _ in range(n - 1):
        await pilot.press("down")
    await pilot.press("enter")
    assert isinstance(pilot.app.screen, MeterScreen)


# --- the plausibility rule on every entry path ---------------------------------------------

async def test_app_asks_before_saving_a_value_below_an_undated_last_one(seeded: Path) -> None:
    app = ReaderApp(seeded, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_meter(pilot, 1)
        await pilot.press("l")
        await type_text(pilot, "15")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)  # before issue 14 it was saved without a question
        assert "MENOR que la anterior (19.113 m³)" in str(app.screen.query_one("#check-text").render())
        await pilot.press("escape")  # re-enter
        await pilot.pause()
        assert isinstance(app.screen, ReadingScreen) and readings(seeded) == []
        app.screen.query_one("#value", Input).value = "19.5"
        await pilot.press("enter")
        await pilot.pause()
        assert [r["value_l"] for r in readings(seeded)] == [19_500]


async def test_app_asks_before_saving_an_absurd_value(seeded: Path) -> None:
    app = ReaderApp(seeded, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_meter(pilot, 2)
        await pilot.press("l")
        await type_text(pilot, "88888")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)
        assert "MÁS ALTA" in str(app.screen.query_one("#check-text").render())
        await pilot.press("c")  # the reader confirms what the register shows
        await pilot.pause()
        (row,) = readings(seeded)
        assert row["value_l"] == 88_888_000 and row["alarms"] == ["confirmed_out_of_range"]


def test_handheld_cli_refuses_without_confirm(seeded: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(handheld_cli, ["read", "WM00000001", "15", "--db", str(seeded)])
    assert res.exit_code == 2 and "MENOR" in res.output and "--confirm" in res.output
    res = runner.invoke(handheld_cli, ["read", "WM00000002", "88888", "--db", str(seeded)])
    assert res.exit_code == 2 and "MÁS ALTA" in res.output
    assert readings(seeded) == []
    res = runner.invoke(handheld_cli, ["read", "WM00000002", "88888", "--confirm", "--db", str(seeded)])
    assert res.exit_code == 0, res.output
    assert [r["alarms"] for r in readings(seeded)] == [["confirmed_out_of_range"]]
    # the documented example: an observation code from the default catalogue, no value
    res = runner.invoke(handheld_cli, ["read", "WM00000003", "--observation", "01", "--db", str(seeded)])
    assert res.exit_code == 0, res.output
    # a second entry this cycle is a correction, never a silent second reading
    res = runner.invoke(handheld_cli, ["read", "WM00000003", "1003.5", "--db", str(seeded)])
    assert res.exit_code == 2 and "--correct" in res.output
    res = runner.invoke(handheld_cli, ["read", "WM00000003", "1003.5", "--correct", "--db", str(seeded)])
    assert res.exit_code == 0, res.output
    rows = {r["meter_serial"]: r for r in readings(seeded) if r["value_l"] == 1_003_500}
    first = next(r for r in readings(seeded) if r["observation_code"] == "01")
    assert rows["WM00000003"]["supersedes"] == first["id"]


async def test_work_order_reading_goes_through_the_rule(seeded: Path) -> None:
    app = ReaderApp(seeded, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        assert isinstance(app.screen, OrdersScreen)
        await pilot.press("enter")  # WO000001 on WM00000001 (registry 19.113 m³, undated)
        assert isinstance(app.screen, OrderScreen)
        await pilot.press("i")
        await pilot.press("l")
        assert isinstance(app.screen, PromptScreen)
        await type_text(pilot, "15")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)  # before issue 14 it was saved unchecked
        await pilot.press("o")  # no observation from an order's check: nothing happens
        assert isinstance(app.screen, CheckScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert readings(seeded) == []
        await pilot.press("l")
        await type_text(pilot, "15")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        (row,) = readings(seeded)
        assert row["value_l"] == 15_000 and row["alarms"] == ["confirmed_out_of_range"]


# --- corrections, n/p, next pending ----------------------------------------------------------

async def test_second_entry_is_offered_as_a_correction_and_save_moves_on(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_meter(pilot, 1)
        await pilot.press("l")
        await type_text(pilot, "1019")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.serial == "WM00000002"  # on to the next pending meter
        await pilot.press("n")
        assert app.screen.serial == "WM00000003"
        await pilot.press("p")
        await pilot.press("p")
        assert app.screen.serial == "WM00000001"
        await pilot.press("p")
        assert app.screen.serial == "WM00000001"  # first of the route: stays
        await pilot.press("l")  # already read this cycle
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "1,019.000" in str(app.screen.query_one("#confirm-text").render())
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen) and len(readings(handheld)) == 1
        await pilot.press("l")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ReadingScreen) and app.screen.supersedes
        await type_text(pilot, "1018")
        await pilot.press("enter")
        await pilot.pause()
        rows = sorted(readings(handheld), key=lambda r: r["id"])
        assert [(r["value_l"], r["supersedes"]) for r in rows] == [(1_019_000, None), (1_018_000, rows[0]["id"])]
        # the walk goes on at the next pending meter, skipping the read one
        assert app.screen.serial == "WM00000002"


# --- 80x24, Spanish, help, banner, scanner --------------------------------------------------

def footer_fits(screen) -> None:  # type: ignore[no-untyped-def]
    keys = list(screen.query(FooterKey))
    assert keys, "no footer keys"
    for k in keys:
        assert k.region.right <= 80 and k.region.width > 0, (type(screen).__name__, k.region)


async def test_every_screen_fits_80x24_has_help_and_the_banner(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        visited = []

        async def check(expected: type) -> None:  # type: ignore[type-arg]
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, expected)
            footer_fits(screen)
            banner = str(screen.query_one("#syncbar").render())
            assert "SIN VERIFICAR" in banner and "Pendientes: " in banner
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = str(app.screen.query_one("#help-keys").render())
            assert "Ayuda" in text and "Comandos" in text
            await pilot.press("escape")
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("f1")
            await pilot.pause()
            assert app.screen is screen
            visited.append(expected.__name__)

        await check(RoutesScreen)
        table = app.screen.query_one("#routes", DataTable)
        assert [str(c) for c in table.get_row_at(0)][0] == "Ruta 01 Centro"  # the name, not the id
        await pilot.press("enter")
        await check(RouteScreen)
        await pilot.press("enter")
        await check(MeterScreen)
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.press("t")
        await check(OrdersScreen)
        assert "Reposición de medidor" in [str(c) for c in app.screen.query_one("#orders", DataTable).get_row_at(0)]
        await pilot.press("enter")
        await check(OrderScreen)
        assert visited == ["RoutesScreen", "RouteScreen", "MeterScreen", "OrdersScreen", "OrderScreen"]


async def test_banner_says_online_after_a_sync_and_offline_when_it_fails(tmp_path: Path) -> None:
    gw = GatewayPeer(tmp_path / "gw.sqlite")
    path = tmp_path / "hh.sqlite"
    from tui_helpers import make_handheld

    make_handheld(path, gateway_url=GatewayPeer.URL, token=gw.token)
    try:
        app = ReaderApp(path, auto_sync_s=None, transport_factory=lambda url: gw.transport())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f5")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "EN LÍNEA (puerta de enlace)" in str(app.screen.query_one("#syncbar").render())
            gw.down = True
            await pilot.press("f5")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "SIN CONEXIÓN" in str(app.screen.query_one("#syncbar").render())
    finally:
        gw.close()


async def test_command_palette_is_spanish(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c[0] for c in app.reader_commands()]
        assert titles == ["Sincronizar ahora", "Ayuda", "Órdenes de trabajo", "Rechazos", "Salir"]
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.query_one("CommandInput").placeholder == "Buscar comando…"
        await type_text(pilot, "ordenes")  # no accent on a field keyboard
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, OrdersScreen)
        await pilot.press("ctrl+p")
        await type_text(pilot, "xyzzy")
        await pilot.pause(0.8)
        shown = [str(o.prompt) for o in app.screen.query_one("CommandList").options]
        assert shown == ["Ningún comando coincide"]


@pytest.mark.parametrize("where", ["home", "route", "meter"])
async def test_scanner_burst_loses_no_key(handheld: Path, where: str) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        if where in ("route", "meter"):
            await pilot.press("enter")
            assert isinstance(app.screen, RouteScreen)
        if where == "meter":
            await pilot.press("enter")
            assert isinstance(app.screen, MeterScreen) and app.screen.serial == "WM00000001"
        # a scanner types the whole serial and Enter in one burst: every key queued at once
        for ch in "WM00000017":
            app.post_message(events.Key(ch, ch))
        app.post_message(events.Key("enter", "\r"))
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen) and app.screen.serial == "WM00000017"


async def test_replacement_order_cannot_complete_without_the_replacement(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await pilot.press("enter")  # WO000001, replace_meter
        await pilot.press("i")
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, OrderScreen)  # no confirmation offered: it would be lost
        assert (app.repo.work_order("WO000001") or {})["status"] == "in_progress"


async def test_replacement_final_reading_goes_through_the_rule(seeded: Path) -> None:
    """WO000001 replaces WM00000001 (registry 19.113 m³, undated): a final of 15 m³ is asked."""
    from tui.screens.orders import ReplacementScreen

    app = ReaderApp(seeded, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        await pilot.press("enter")
        await pilot.press("i")
        await pilot.press("m")
        assert isinstance(app.screen, ReplacementScreen)
        for field, text in (("old", "15"), ("serial", "WMX0001"), ("new", "0.002")):
            app.screen.query_one(f"#{field}", Input).value = text
        app.screen.query_one("#new", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)
        await pilot.press("escape")  # re-enter: nothing recorded
        await pilot.pause()
        assert not (app.repo.work_order("WO000001") or {}).get("result")
        await pilot.press("m")
        for field, text in (("old", "15"), ("serial", "WMX0001"), ("new", "0.002")):
            app.screen.query_one(f"#{field}", Input).value = text
        app.screen.query_one("#new", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        rep = (app.repo.work_order("WO000001") or {})["result"]["replacement"]
        assert (rep["old_final_l"], rep["new_serial"]) == (15_000, "WMX0001")


def test_handheld_cli_replacement_needs_confirm(seeded: Path) -> None:
    runner = CliRunner()
    base = ["order", "replace", "WO000001", "--old-final", "15", "--new-serial", "WMX0001", "--new-initial", "0",
            "--db", str(seeded)]
    assert runner.invoke(handheld_cli, ["order", "start", "WO000001", "--db", str(seeded)]).exit_code == 0
    res = runner.invoke(handheld_cli, base)
    assert res.exit_code == 2 and "MENOR" in res.output and "--confirm" in res.output
    res = runner.invoke(handheld_cli, [*base, "--confirm"])
    assert res.exit_code == 0, res.output


async def test_brackets_in_typed_or_downloaded_text_never_crash(handheld: Path) -> None:
    """Rich markup in data ("[/]" in an address, a code's description, a typed value or reason)
    is shown as typed: it made Textual raise MarkupError and end the app."""
    store = EdgeStore.open(handheld, site_id=SITE)
    hlc = pack(store.hlc.wall() + 1000)
    registry_rows = [
        RowState("service_points", "SP0000001", {"address": Cell("Calle [/] 5 [bold]", hlc, SERVER_SITE)}, 1),
        RowState("observation_codes", "obs-01", {"description": Cell("Casa [/] cerrada", hlc, SERVER_SITE)}, 1),
        RowState("routes", "R01", {"name": Cell("Ruta [red]1", hlc, SERVER_SITE)}, 1),
    ]
    store.apply_pull(messages.PullBatch(rows=registry_rows, cursor={"sample": 3}))
    store.close()
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#routes", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["Ruta 02 Centro", "Ruta [red]1"]
        await pilot.press("down")
        await open_meter(pilot, 1)
        assert "Calle [/] 5 [bold]" in str(app.screen.query_one("#meter-info").render())
        await pilot.press("l")
        await type_text(pilot, "[/]")
        await pilot.press("enter")
        await pilot.pause()
        assert "«[/]»" in str(app.screen.query_one("#error").render())
        await pilot.press("f4")
        await pilot.pause()
        assert "Casa [/] cerrada" in str(app.screen.query_one("#obs-list").get_option_at_index(0).prompt)
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.press("t")
        await pilot.press("enter")
        await pilot.press("i")
        await pilot.press("x")
        await type_text(pilot, "Perro [/] bravo")
        await pilot.press("enter")
        await pilot.pause()
        assert (app.repo.work_order("WO000001") or {})["result"]["reason"] == "Perro [/] bravo"
        assert app.is_running
