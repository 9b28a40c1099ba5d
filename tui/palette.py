"""The command palette in the reader's language: Spanish commands found with or without
accents ("orden" finds "Órdenes de trabajo"), and a Spanish line when nothing matches."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual.command import CommandList, CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.widgets.option_list import Option

from .i18n import t

if TYPE_CHECKING:
    from .app import ReaderApp


def fold(text: str) -> str:
    """Lower case without accents: a reader types "ordenes" on a keyboard without Ó."""
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


Command = tuple[str, str, Callable[[], object]]


class ReaderCommands(Provider):
    """The app's commands (`ReaderApp.reader_commands()`), not Textual's English system ones."""

    def _commands(self) -> list[Command]:
        return list(cast("ReaderApp", self.app).reader_commands())

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(fold(query))
        for title, help_text, callback in self._commands():
            score = matcher.match(fold(title))
            if score > 0:
                yield Hit(score, title, callback, help=help_text)


class ReaderPalette(CommandPalette):
    """Textual's palette with a Spanish placeholder and no-match line."""

    def __init__(self) -> None:
        super().__init__(id="--command-palette", placeholder=t("palette_placeholder"))

    # Textual writes "No matches found" in English from this hook; same timing, our words.
    def _start_no_matches_countdown(self, search_value: str) -> None:
        self._stop_no_matches_countdown()

        def show() -> None:
            if search_value:
                self.query_one(CommandList).add_option(
                    Option(t("palette_no_match"), disabled=True, id=self._NO_MATCHES))
            self._list_visible = bool(search_value)

        self._no_matches_timer = self.set_timer(self._NO_MATCHES_COUNTDOWN, show)
