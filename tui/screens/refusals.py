"""Changes the server refused, with what the reader should do: kept until someone acts, never hidden.

The server's own reason is technical English for staff; the reader sees a Spanish hint per
refusal code and gets the server's text on Enter, to read out to the office."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ..i18n import t
from ..text import cell
from ..widgets.syncbar import SyncBar
from .orders import label

if TYPE_CHECKING:
    from ..app import ReaderApp


class RefusalsScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [Binding("escape", "back", t("key_back"))]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(t("refusals_title"), classes="title")
        yield Static("", id="refusals-empty", classes="hint")
        yield DataTable(id="refusals", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        table = self.query_one("#refusals", DataTable)
        table.add_column(t("col_table"), key="table")
        table.add_column(t("col_code"), key="code")
        table.add_column(t("col_reason"), key="reason", width=50)
        refusals = self.app.enrolled_repo.refusals()
        self._details = [str(r.get("reason", "")) for r in refusals]
        for r in refusals:
            table.add_row(label("table", r.get("table")), label("refusal", r.get("code")),
                          cell(label("refusal_hint", r.get("code"))))
        self.query_one("#refusals-empty", Static).update("" if refusals else t("refusals_none"))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        detail = self._details[event.cursor_row][:300]
        self.notify(t("refusal_detail", reason=detail), markup=False, timeout=15)

    def action_back(self) -> None:
        self.app.pop_screen()
