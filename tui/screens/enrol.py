"""First start: enrol the handheld with a credential, then download its routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from ..enrol import EnrolError, enrol
from ..i18n import t
from ..widgets.form import ErrorLine, Field

if TYPE_CHECKING:
    from ..app import ReaderApp


class EnrolScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [Binding("ctrl+q", "app.quit", t("key_quit"))]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="enrol-form"):
            yield Static(t("enrol_title"), classes="title")
            yield Static(t("enrol_help"), classes="hint")
            yield Field(t("enrol_url"), "url", placeholder="https://…")
            yield Field(t("enrol_code"), "code", password=True)
            yield Field(t("enrol_gateway"), "gateway", placeholder="http://…")
            yield Field(t("enrol_reader"), "reader")
            yield ErrorLine(id="error", classes="error")
            yield Static("", id="enrol-status", classes="ok")
            yield Static(f"Enter = {t('enrol_go')} · Ctrl+Q = {t('key_quit')}", classes="hint")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        self.query_one("#url", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        order = ["url", "code", "gateway", "reader"]
        current = event.input.id or "url"
        values = {k: self.query_one(f"#{k}", Input).value for k in order}
        # Enter walks down the form; on the last field, or with the two required ones filled, it submits
        if current != "reader" and not (values["url"].strip() and values["code"].strip() and current != "url"):
            self.query_one(f"#{order[order.index(current) + 1]}", Input).focus()
            return
        self.query_one(ErrorLine).clear()
        self.query_one("#enrol-status", Static).update(t("enrol_working"))
        self._enrol(values)

    @work(thread=True, exclusive=True, group="enrol")
    def _enrol(self, values: dict[str, str]) -> None:
        app = self.app
        try:
            repo, outcome = enrol(app.db_path, values["url"], values["code"],
                                  gateway_url=values["gateway"], reader_id=values["reader"],
                                  transport_factory=app.transport_factory)
        except EnrolError as exc:
            app.call_from_thread(self._failed, t(exc.key, **exc.params))
            return
        except Exception as exc:  # noqa: BLE001 - shown, never a traceback on the reader's screen
            app.call_from_thread(self._failed, t("err_enrol_refused", reason=f"{type(exc).__name__}: {exc}"))
            return
        app.call_from_thread(app.enrolled, repo, outcome)

    def _failed(self, text: str) -> None:
        self.query_one("#enrol-status", Static).update("")
        self.query_one(ErrorLine).show(text)
