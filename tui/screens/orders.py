"""Work orders: list, detail, start, notes, readings, replacement, complete or impossible."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from sync.vocab.work_orders import ResultError, WorkOrderStatus

from ..i18n import t
from ..repository import IncompleteOrder, OrderClosed, UnknownMeter
from ..validation import EntryError, format_local, format_m3, parse_reading_m3
from ..widgets.form import ErrorLine, Field
from ..widgets.syncbar import SyncBar


def status_text(status: object) -> str:
    return t(f"wo_status_{status}") if status else "—"


class OrdersScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("s", "sync", t("key_sync")),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(t("orders_title"), classes="title")
        yield Static("", id="orders-empty", classes="hint")
        yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#orders", DataTable)
        for key in ("col_order", "col_type", "col_status", "col_priority", "col_serial", "col_due"):
            table.add_column(t(key), key=key)
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        table = self.query_one("#orders", DataTable)
        table.clear()
        orders = repo.work_orders()
        self._ids = [o["id"] for o in orders]
        for o in orders:
            table.add_row(str(o["id"])[-8:], o.get("type") or "", status_text(o.get("status")),
                          o.get("priority") or "", o.get("meter_serial") or "",
                          format_local(o["due_at"])[:10] if o.get("due_at") else "")
        self.query_one("#orders-empty", Static).update("" if orders else t("orders_none"))
        self.query_one(SyncBar).refresh_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._ids):
            self.app.push_screen(OrderScreen(self._ids[event.cursor_row]))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_sync(self) -> None:
        self.app.action_sync()  # type: ignore[attr-defined]


class OrderScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("i", "start", t("key_start")),
        Binding("n", "note", t("key_note")),
        Binding("l", "reading", t("key_reading")),
        Binding("m", "replace", t("key_replace")),
        Binding("t", "complete", t("key_complete")),
        Binding("x", "impossible", t("key_impossible")),
    ]

    def __init__(self, order_id: str) -> None:
        super().__init__()
        self.order_id = order_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(t("order_title", id=self.order_id[-8:]), classes="title")
        yield Static("", id="order-info")
        yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#events", DataTable)
        table.add_column(t("col_date"), key="at")
        table.add_column(t("col_type"), key="kind")
        table.add_column(t("order_note"), key="notes", width=40)
        self.refresh_data()
        table.focus()

    def refresh_data(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        o = repo.work_order(self.order_id) or {}
        sp = repo._sps.get(o.get("service_point_id") or "") or {}
        lines = [
            f"{t('col_type')}: {o.get('type') or '—'}   {t('col_status')}: {status_text(o.get('status'))}"
            f"   {t('col_priority')}: {o.get('priority') or '—'}",
            f"{t('col_serial')}: {o.get('meter_serial') or '—'}   {t('meter_address')}: {sp.get('address') or '—'}",
            str(o.get("description") or ""),
        ]
        if o.get("result"):
            lines.append(json.dumps(o["result"], ensure_ascii=False)[:150])
        self.query_one("#order-info", Static).update("\n".join(lines))
        table = self.query_one("#events", DataTable)
        table.clear()
        for e in repo.order_events(self.order_id):
            table.add_row(format_local(e["at"]) if e.get("at") else "", e.get("kind") or "",
                          (e.get("notes") or "")[:40])
        self.query_one(SyncBar).refresh_status()

    def _guard(self, fn: Callable[[], Any], ok: str) -> None:
        try:
            fn()
        except OrderClosed as exc:
            self.app.notify(t("order_closed", status=status_text(exc.status)), severity="error")
            return
        except UnknownMeter as exc:
            self.app.notify(t("err_unknown_meter", serial=str(exc)), severity="error")
            return
        except (IncompleteOrder, ResultError) as exc:
            # the reason itself is English (API and logs); field staff get Spanish by field
            key = {"result.replacement": "order_needs_replacement",
                   "result.installation": "order_needs_installation",
                   "result.replacement.new_serial": "order_bad_new_serial",
                   "result.replacement.old_final_l": "order_bad_litres",
                   "result.replacement.new_initial_l": "order_bad_litres"}.get(exc.field)
            self.app.notify(t(key) if key else t("order_result_invalid", field=exc.field),
                            severity="error", timeout=10)
            return
        self.app.notify(ok)
        self.app.after_local_write()  # type: ignore[attr-defined]
        self.refresh_data()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        self._guard(lambda: repo.start_order(self.order_id), t("order_started"))

    def action_note(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]

        def done(text: str | None) -> None:
            if text:
                self._guard(lambda: repo.add_note(self.order_id, text), t("order_note_saved"))

        self.app.push_screen(PromptScreen(t("order_note"), "text"), done)

    def action_reading(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]

        def done(text: str | None) -> None:
            if text:
                value = parse_reading_m3(text)  # already validated by the prompt
                self._guard(lambda: repo.order_reading(self.order_id, value), t("order_reading_saved"))

        self.app.push_screen(PromptScreen(t("reading_value"), "reading"), done)

    def action_replace(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]

        def done(values: tuple[int, str, int] | None) -> None:
            if values:
                old, serial, new = values
                self._guard(lambda: repo.record_replacement(self.order_id, old, serial, new),
                            t("order_replacement_saved", old=format_m3(old), new_serial=serial, new=format_m3(new)))

        self.app.push_screen(ReplacementScreen(), done)

    def action_complete(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]
        o = repo.work_order(self.order_id) or {}
        if o.get("status") in (WorkOrderStatus.CREATED, WorkOrderStatus.ASSIGNED):
            self.app.notify(t("order_not_started"), severity="warning")
            return
        self._guard(lambda: repo.complete_order(self.order_id), t("order_completed"))

    def action_impossible(self) -> None:
        repo = self.app.repo  # type: ignore[attr-defined]

        def done(reason: str | None) -> None:
            if reason:
                self._guard(lambda: repo.report_impossible(self.order_id, reason),
                            t("order_impossible_saved", reason=reason))

        self.app.push_screen(PromptScreen(t("order_reason"), "text"), done)


class PromptScreen(ModalScreen[str | None]):
    """One line of input; kind "reading" validates a register value before returning."""

    BINDINGS = [Binding("escape", "cancel", t("key_cancel"))]

    def __init__(self, label: str, kind: str = "text") -> None:
        super().__init__()
        self.label = label
        self.kind = kind

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Field(self.label, "prompt")
            yield ErrorLine(classes="error")
            yield Label(f"Enter = {t('key_save')} · Esc = {t('key_cancel')}", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.kind == "reading":
            try:
                parse_reading_m3(text)
            except EntryError as exc:
                self.query_one(ErrorLine).show(t(exc.key, **exc.params))  # type: ignore[arg-type]
                return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplacementScreen(ModalScreen[tuple[int, str, int] | None]):
    BINDINGS = [Binding("escape", "cancel", t("key_cancel"))]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("replace_title"), classes="title")
            yield Field(t("replace_old_final"), "old")
            yield Field(t("replace_new_serial"), "serial")
            yield Field(t("replace_new_initial"), "new")
            yield ErrorLine(classes="error")
            yield Label(f"Enter = {t('key_save')} · Esc = {t('key_cancel')}", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#old", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        nxt = {"old": "serial", "serial": "new"}.get(event.input.id or "")
        if nxt is not None:  # Enter moves down the form; the last field submits it
            self.query_one(f"#{nxt}", Input).focus()
            return
        err = self.query_one(ErrorLine)
        try:
            old = parse_reading_m3(self.query_one("#old", Input).value)
            serial = self.query_one("#serial", Input).value.strip()
            if not serial:
                raise EntryError("err_serial_empty")
            new = parse_reading_m3(self.query_one("#new", Input).value)
        except EntryError as exc:
            err.show(t(exc.key, **exc.params))  # type: ignore[arg-type]
            return
        self.dismiss((old, serial, new))

    def action_cancel(self) -> None:
        self.dismiss(None)
