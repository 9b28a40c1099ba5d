"""Progress lines on stderr (the summary goes to stdout so scripts can parse it)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, what: str, stream: TextIO | None = None, every_s: float = 1.0, quiet: bool = False) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.quiet = quiet
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < self.every_s):
            return
        self._last = now
        print(f"[{self.what} {now - self.started:7.1f}s] {text}", file=self.stream, flush=True)
