"""Drives the real reader app headless in its own process, for the kill -9 test.

Usage: python kill_driver.py DB. Walks route R01 entering readings through the screens; after
the screen confirms each one it prints `CONFIRMED <serial> <value_l>` and goes on to the next,
forever, until the parent kills it.
"""

from __future__ import annotations

import asyncio
import sys

from tui.app import ReaderApp
from tui.screens.meter import MeterScreen
from tui.screens.reading import ReadingScreen


async def main(db: str) -> None:
    app = ReaderApp(db, auto_sync_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")  # route R01
        i = 0
        while True:
            await pilot.press("enter")  # the meter under the cursor
            assert isinstance(app.screen, MeterScreen)
            serial = app.screen.serial
            value_l = 1_001_000 + (i + 1) * 1_000 + 18_000 + i
            await pilot.press("l")
            assert isinstance(app.screen, ReadingScreen)
            text = f"{value_l // 1000}.{value_l % 1000:03d}"
            for ch in text:
                await pilot.press(ch)
            seen = {n.identity for n in app._notifications}  # they expire, so compare ids
            await pilot.press("enter")
            while not (isinstance(app.screen, MeterScreen) and any(n.identity not in seen for n in app._notifications)):
                await pilot.pause(0.01)
            msg = next(n.message for n in app._notifications if n.identity not in seen)
            assert "Lectura guardada" in msg, msg
            print(f"CONFIRMED {serial} {value_l}", flush=True)  # what the reader saw on screen
            await pilot.press("escape")
            await pilot.press("down")
            i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
