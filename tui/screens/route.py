"""One route: progress, meters in walking order, search by serial or address.

With route_id None it searches every downloaded route (search from the home screen).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from ..i18n import t
from ..repository import MeterRow
from ..validation import format_m3
from ..widgets.form import ErrorLine
from ..widgets.syncbar import SyncBar


class RouteScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("b", "search", t("key_search")),
        Binding("p", "next_pending", t("status_pending").capitalize()),
        Binding("s", "sync", t("key_sync")),
    ]

    def __init__(self, route_id: str | None) -> None:
        super().__init__()
        self.route_id = route_id
        self.filter = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="progress", classes="title")
        yield Input(placeholder=t("search_placeholder"), id="search")
        yield ErrorLine(id="error", classes="error")
        yield DataTable(id="meters", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#meters", DataTable)
        table.add_column(t("col_seq"), key="seq")
        table.add_column(t("col_serial"), key="serial")
        table.add_column(t("col_address"), key="address", width=36)
        table.add_column(t("col_status"), key="status")
        table.add_column(t("col_last"), key="last")
        self.refresh_data()
        if self.route_id is None:
            self.query_one("#search", Input).focus()
        else:
            table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_data()

    def _rows(self) -> list[MeterRow]:
        repo = self.app.repo  # type: ignore[attr-defined]
        if self.filter:
            return list(repo.search(self.filter, self.route_id))
        if self.route_id is None:
            return []
        return list(repo.route_meters(self.route_id))

    def refresh_data(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        progress = self.query_one("#progress", Static)
        if self.route_id is not None:
            r = repo.route(self.route_id)
            if r is not None:
                progress.update(t("route_progress", name=r.name, read=r.read, skipped=r.skipped,
                                  pending=r.pending, total=r.total))
        else:
            progress.update(t("key_search"))
        table = self.query_one("#meters", DataTable)
        keep = table.cursor_row
        table.clear()
        rows = self._rows()
        table.add_rows(
            (m.seq, m.serial, m.address[:36], t(f"status_{m.status}"), format_m3(m.last_value_l)) for m in rows
        )
        # keys = serial, so selection maps back without a second lookup
        self._serials = [m.serial for m in rows]
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self.query_one(SyncBar).refresh_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        err = self.query_one(ErrorLine)
        err.clear()
        self.filter = query
        self.refresh_data()
        if not query:
            self.query_one("#meters", DataTable).focus()
            return
        if not self._serials:
            repo = self.app.repo  # type: ignore[attr-defined]
            looks_like_serial = any(ch.isdigit() for ch in query) and " " not in query
            if looks_like_serial and not repo.known_meter(query):
                err.show(t("search_unknown_meter", q=query))
            else:
                err.show(t("search_none", q=query))
            return
        if len(self._serials) == 1:
            self._open(self._serials[0])
        else:
            self.query_one("#meters", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._serials):
            self._open(self._serials[event.cursor_row])

    def _open(self, serial: str) -> None:
        from .meter import MeterScreen

        self.app.push_screen(MeterScreen(serial, route_serials=self._serials))

    def action_back(self) -> None:
        if self.filter and self.route_id is not None:
            self.filter = ""
            self.query_one("#search", Input).value = ""
            self.query_one(ErrorLine).clear()
            self.refresh_data()
            self.query_one("#meters", DataTable).focus()
            return
        self.app.pop_screen()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_next_pending(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        table = self.query_one("#meters", DataTable)
        n = len(self._serials)
        for step in range(1, n + 1):
            i = (table.cursor_row + step) % n
            if repo.meter_status(self._serials[i]) == "pending":
                table.move_cursor(row=i)
                return

    def action_sync(self) -> None:
        self.app.action_sync()  # type: ignore[attr-defined]
