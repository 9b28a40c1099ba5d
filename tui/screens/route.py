"""One route: progress, meters in walking order, search by serial or address.

With route_id None it searches every downloaded route (search from the home screen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events, getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from ..i18n import t
from ..repository import MeterRow
from ..text import plain
from ..validation import format_m3
from ..widgets.form import ErrorLine
from ..widgets.meterlist import LazyRows, MeterList, format_row
from ..widgets.syncbar import SyncBar

if TYPE_CHECKING:
    from ..app import ReaderApp


def type_ahead_reserved(screen: Screen[None]) -> set[str]:
    """Keys that stay commands on a list screen (its own and the app's bindings)."""
    keys: set[str] = set()
    for b in [*getattr(screen, "BINDINGS", []), *getattr(screen.app, "BINDINGS", [])]:
        if isinstance(b, Binding):
            keys.update(k.strip() for k in b.key.split(","))
    return keys


class ScanSearch:
    """A serial typed or scanned on a screen without a search box opens the all-routes search.
    The burst's first key opens it; keys still queued for this screen (Textual switches screens
    after the keys already queued) are passed on to it in order, so none is lost."""

    def __init__(self, screen: Screen[None]) -> None:
        self.screen = screen
        self.search: RouteScreen | None = None

    def reset(self) -> None:  # the screen is active again: a new burst starts a new search
        self.search = None

    def key(self, event: events.Key) -> None:
        if self.search is not None:
            if self.search.take_key(event.key, event.character):
                event.stop()
                event.prevent_default()
            return
        ch = event.character
        if not ch or not ch.isprintable() or ch.isspace() or event.key in type_ahead_reserved(self.screen):
            return
        if not cast("ReaderApp", self.screen.app).enrolled_repo.has_routes():
            return
        event.stop()
        event.prevent_default()
        self.search = RouteScreen(None, typed=ch)
        self.screen.app.push_screen(self.search)


def row_cells(m: MeterRow) -> tuple[str, ...]:
    return (str(m.seq), m.serial, m.address, t(f"status_{m.status}"), format_m3(m.last_value_l))


class RouteScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("b", "search", t("key_search")),
        Binding("p", "next_pending", t("status_pending").capitalize()),
        Binding("s", "sync", t("key_sync")),
    ]

    def __init__(self, route_id: str | None, typed: str = "") -> None:
        super().__init__()
        self.route_id = route_id
        self.filter = ""
        # characters typed (or scanned) before the search box had the focus: they are kept, in
        # order, so a barcode scanner's burst ("WM-…-000123" + Enter) loses no key
        self._typed_ahead = bool(typed)
        self._initial = typed
        self._mounted_search = False
        self._submit_on_mount = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="progress", classes="title")
        yield Input(placeholder=t("search_placeholder"), id="search")
        yield ErrorLine(id="error", classes="error")
        yield Static(format_row([t("col_seq"), t("col_serial"), t("col_address"), t("col_status"), t("col_last")]),
                     id="meters-head", classes="colhead")
        yield MeterList(id="meters")
        yield SyncBar(id="syncbar")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        self.refresh_data()
        self._mounted_search = True
        if self._initial:
            search = self.query_one("#search", Input)
            search.value = self._initial + search.value
            search.cursor_position = len(search.value)
        if self._submit_on_mount:
            self._submit(self.query_one("#search", Input).value)
            return
        if self.route_id is None:
            self.query_one("#search", Input).focus()
        else:
            self.query_one("#meters", MeterList).focus()

    def on_screen_resume(self) -> None:
        if getattr(self, "_shown", False):  # the first resume comes right after mount
            self.refresh_data()
        self._shown = True

    def _rows(self) -> list[MeterRow]:
        repo = self.app.enrolled_repo
        if self.filter:
            return list(repo.search(self.filter, self.route_id))
        if self.route_id is None:
            return []
        return list(repo.route_meters(self.route_id))

    def refresh_data(self) -> None:
        repo = self.app.enrolled_repo
        progress = self.query_one("#progress", Static)
        if self.route_id is not None:
            r = repo.route(self.route_id)
            if r is not None:
                progress.update(plain(t("route_progress", name=r.name, read=r.read, skipped=r.skipped,
                                  pending=r.pending, total=r.total)))
        else:
            progress.update(t("key_search"))
        meters = self.query_one("#meters", MeterList)
        if self.filter or self.route_id is None:
            rows = self._rows()
            meters.set_rows([row_cells(m) for m in rows], [m.status != "pending" for m in rows])
            self._serials = [m.serial for m in rows]
        else:
            serials = repo.route_serials(self.route_id)
            meters.set_rows(LazyRows(len(serials), lambda i: row_cells(repo.meter_row(i + 1, serials[i]))),
                            [repo.meter_status(s) != "pending" for s in serials])
            self._serials = serials
        self.query_one(SyncBar).refresh_status()

    def on_key(self, event: events.Key) -> None:
        if self.take_key(event.key, event.character):
            event.stop()
            event.prevent_default()

    def take_key(self, key: str, character: str | None) -> bool:
        """Type-ahead into the search box from the list. Focus moves only after the keys already
        queued are handled, so each key of a burst is appended here, in order, until the box has
        the focus; keys that arrive before the widgets exist are buffered. True = consumed."""
        if not self._mounted_search:
            if key == "enter" and self._typed_ahead:
                self._submit_on_mount = True
            elif character and character.isprintable():
                self._initial += character
                self._typed_ahead = True
            else:
                return False
            return True
        search = self.query_one("#search", Input)
        if search.has_focus:
            if self.app.screen is not self:  # fed by the home screen: the box is not reached yet
                if key == "enter":
                    self._submit(search.value)
                elif character and character.isprintable():
                    search.insert_text_at_cursor(character)
                return True
            return False
        if key == "enter" and self._typed_ahead:
            self._submit(search.value)
            return True
        if character and character.isprintable() and key not in type_ahead_reserved(self):
            if not self._typed_ahead:
                search.value = ""
            self._typed_ahead = True
            search.value += character
            search.cursor_position = len(search.value)
            search.focus()
            return True
        return False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    def _submit(self, value: str) -> None:
        self._typed_ahead = False
        query = value.strip()
        err = self.query_one(ErrorLine)
        err.clear()
        self.filter = query
        self.refresh_data()
        if not query:
            self.query_one("#meters", MeterList).focus()
            return
        if not self._serials:
            repo = self.app.enrolled_repo
            looks_like_serial = any(ch.isdigit() for ch in query) and " " not in query
            if looks_like_serial and not repo.known_meter(query):
                err.show(t("search_unknown_meter", q=query))
            else:
                err.show(t("search_none", q=query))
            return
        meters = self.query_one("#meters", MeterList)
        meters.cursor = 0
        if len(self._serials) == 1:
            self._open(self._serials[0])
        else:
            meters.focus()

    def on_meter_list_selected(self, event: MeterList.Selected) -> None:
        if 0 <= event.index < len(self._serials):
            self._open(self._serials[event.index])

    def _open(self, serial: str) -> None:
        from .meter import MeterScreen

        self.app.push_screen(MeterScreen(serial, route_serials=self._serials))

    def action_back(self) -> None:
        if self.filter and self.route_id is not None:
            self.filter = ""
            self.query_one("#search", Input).value = ""
            self.query_one(ErrorLine).clear()
            self.refresh_data()
            self.query_one("#meters", MeterList).focus()
            return
        self.app.pop_screen()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_next_pending(self) -> None:
        repo = self.app.enrolled_repo
        meters = self.query_one("#meters", MeterList)
        n = len(self._serials)
        for step in range(1, n + 1):
            i = (meters.cursor + step) % n
            if repo.meter_status(self._serials[i]) == "pending":
                meters.cursor = i
                return

    def action_sync(self) -> None:
        self.app.action_sync()
