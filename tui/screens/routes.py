"""Home screen: the downloaded routes with their progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..i18n import t
from ..text import cell
from ..widgets.syncbar import SyncBar
from .route import RouteScreen, ScanSearch

if TYPE_CHECKING:
    from ..app import ReaderApp


class RoutesScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [
        Binding("enter", "open", t("key_open"), show=False),
        Binding("b", "search", t("key_search")),
        Binding("t", "orders", t("key_orders")),
        Binding("s", "sync", t("key_sync")),
        Binding("r", "refusals", t("key_refusals")),
        Binding("q", "app.quit", t("key_quit")),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._scan = ScanSearch(self)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(t("routes_title"), classes="title")
        yield Static("", id="routes-empty", classes="hint")
        yield DataTable(id="routes", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        table = self.query_one("#routes", DataTable)
        # the route's name, never its id (a UUID for routes made by the cloud)
        table.add_column(t("col_route"), key="name")
        table.add_column(t("col_read"), key="read")
        table.add_column(t("col_skipped"), key="skipped")
        table.add_column(t("col_pending"), key="pending")
        table.add_column(t("col_total"), key="total")
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        self._scan.reset()
        self.refresh_data()

    def refresh_data(self) -> None:
        repo = self.app.enrolled_repo
        table = self.query_one("#routes", DataTable)
        keep = table.cursor_row
        table.clear()
        routes = repo.routes()
        for r in routes:
            table.add_row(cell(r.name), r.read, r.skipped, r.pending, r.total, key=r.id)
        self.query_one("#routes-empty", Static).update("" if routes else t("routes_none"))
        if routes:
            table.move_cursor(row=min(keep, len(routes) - 1))
        self.query_one(SyncBar).refresh_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(str(event.row_key.value))

    def action_open(self) -> None:
        table = self.query_one("#routes", DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self._open(str(key.value))

    def _open(self, route_id: str) -> None:
        self.app.push_screen(RouteScreen(route_id))

    def action_search(self) -> None:
        repo = self.app.enrolled_repo
        if not repo.has_routes():
            self.app.notify(t("err_no_routes"), severity="error")
            return
        self.app.push_screen(RouteScreen(None))

    def action_orders(self) -> None:
        from .orders import OrdersScreen

        self.app.push_screen(OrdersScreen())

    def action_sync(self) -> None:
        self.app.action_sync()

    def on_key(self, event: events.Key) -> None:
        self._scan.key(event)  # a serial typed or scanned here searches every route

    def action_refusals(self) -> None:
        from .refusals import RefusalsScreen

        self.app.push_screen(RefusalsScreen())
