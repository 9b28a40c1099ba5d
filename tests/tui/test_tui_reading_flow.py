"""Headless pilot tests of route work: open a route, find a meter, enter readings."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input
from tui_helpers import readings

from tui.app import ReaderApp
from tui.screens.meter import MeterScreen
from tui.screens.reading import CheckScreen, ObservationScreen, ReadingScreen
from tui.screens.route import RouteScreen
from tui.screens.routes import RoutesScreen

pytestmark = pytest.mark.anyio


async def open_first_meter(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    assert isinstance(app.screen, RoutesScreen)
    await pilot.press("enter")
    assert isinstance(app.screen, RouteScreen)
    await pilot.press("enter")
    assert isinstance(app.screen, MeterScreen)


async def test_normal_reading_is_committed_and_route_progress_moves(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        assert app.screen.serial == "WM00000001"
        await pilot.press("l")
        assert isinstance(app.screen, ReadingScreen)
        # last 1,001 m³ 30 days ago at ~600 L/day → 1,019 m³ is normal
        for ch in "1019.5":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen)
        rows = readings(handheld)
        assert [(r["meter_serial"], r["value_l"], r["source"], r["reader_id"]) for r in rows] == [
            ("WM00000001", 1_019_500, "handheld", "L-001")]
        assert rows[0]["alarms"] == []
        await pilot.press("escape")
        assert isinstance(app.screen, RouteScreen)
        assert "1 leídos" in str(app.screen.query_one("#progress").render())
        assert app.screen.query_one("#meters").rows[0][3] == "leído"


async def test_non_numeric_reading_shows_spanish_error_and_saves_nothing(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        for ch in "12a4":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ReadingScreen)
        err = str(app.screen.query_one("#error").render())
        assert "no es una lectura válida" in err
        assert readings(handheld) == []


async def test_too_high_reading_asks_and_confirmation_records_alarm(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        for ch in "10190":  # an extra digit: 10,190 m³
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)
        text = str(app.screen.query_one("#check-text").render())
        assert "MÁS ALTA" in text
        assert readings(handheld) == []  # nothing written while the reader decides
        await pilot.press("escape")  # re-enter
        assert isinstance(app.screen, ReadingScreen)
        inp = app.screen.query_one("#value", Input)
        inp.value = ""
        for ch in "10190":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen)
        (row,) = readings(handheld)
        assert row["value_l"] == 10_190_000 and row["alarms"] == ["confirmed_out_of_range"]


async def test_lower_than_last_offers_rollover_or_reverse(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        for ch in "900":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CheckScreen)
        assert "MENOR que la anterior" in str(app.screen.query_one("#check-text").render())
        await pilot.press("i")  # reverse flow
        await pilot.pause()
        (row,) = readings(handheld)
        assert row["value_l"] == 900_000 and row["alarms"] == ["reverse_flow"]


async def test_observation_code_without_reading_marks_meter_skipped(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, ObservationScreen)
        await pilot.press("down")  # 01 → 02 "Perro bravo"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen)
        (row,) = readings(handheld)
        assert row["value_l"] is None and row["observation_code"] == "02"
        await pilot.press("escape")
        assert "1 con observación" in str(app.screen.query_one("#progress").render())


async def test_correction_supersedes_never_overwrites(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        for ch in "1019":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        # saving moved on to the next pending meter; back to the one just read
        assert isinstance(app.screen, MeterScreen) and app.screen.serial == "WM00000002"
        await pilot.press("p")
        assert app.screen.serial == "WM00000001"
        await pilot.press("c")  # correct this cycle's reading
        assert isinstance(app.screen, ReadingScreen) and app.screen.supersedes
        for ch in "1018":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen)
        rows = sorted(readings(handheld), key=lambda r: r["id"])
        assert [r["value_l"] for r in rows] == [1_019_000, 1_018_000]
        assert rows[1]["supersedes"] == rows[0]["id"]
        await pilot.press("p")
        history = app.screen.query_one("#history", DataTable)
        assert "corregida" in [str(c) for c in history.get_row_at(1)]


async def test_search_by_address_and_unknown_serial(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        assert isinstance(app.screen, RouteScreen)
        for ch in "WM99":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert "Medidor desconocido" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#search", Input).value = "madero 102"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MeterScreen) and app.screen.serial == "WM00000002"


async def test_everything_fits_80x24(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        for widget in [*screen.query(Input), screen.query_one("#error")]:
            r = widget.region
            if widget.display:
                assert r.y >= 0 and r.bottom <= 24 and r.right <= 80, (widget, r)
        assert len(list(screen.query(Input))) == 5


async def test_observation_needing_a_photo_asks_for_it(handheld: Path) -> None:
    app = ReaderApp(handheld, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_first_meter(pilot)
        await pilot.press("l")
        for ch in "1019":
            await pilot.press(ch)
        app.screen.query_one("#obs", Input).value = "06"  # tampered meter: photo required
        await pilot.press("enter")
        await pilot.pause()
        assert "requiere la referencia de una foto" in str(app.screen.query_one("#error").render())
        assert readings(handheld) == []
        app.screen.query_one("#photo", Input).value = "IMG_0042.jpg"
        await pilot.press("enter")
        await pilot.pause()
        (row,) = readings(handheld)
        assert (row["value_l"], row["observation_code"], row["photo_ref"]) == (1_019_000, "06", "IMG_0042.jpg")
