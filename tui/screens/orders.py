"""Work orders: list, detail, start, notes, readings, replacement, complete or impossible."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from sync.plausibility import CONFIRMED_FLAG
from sync.vocab.readings import ReadingFlag
from sync.vocab.work_orders import ResultError, WorkOrderStatus

from ..i18n import has, t
from ..repository import Implausible, IncompleteOrder, OrderClosed, UnknownMeter
from ..text import cell, plain
from ..validation import EntryError, format_local, format_m3, parse_reading_m3
from ..widgets.form import ErrorLine, Field
from ..widgets.meterlist import fit_end
from ..widgets.syncbar import SyncBar
from .dialogs import ConfirmScreen

if TYPE_CHECKING:
    from ..app import ReaderApp


def status_text(status: object) -> str:
    return t(f"wo_status_{status}") if status else "—"


def incomplete_text(exc: IncompleteOrder | ResultError) -> str:
    """Why an order cannot be completed, by field (the reason itself is English: API and logs)."""
    key = {"result.replacement": "order_needs_replacement",
           "result.installation": "order_needs_installation",
           "result.replacement.new_serial": "order_bad_new_serial",
           "result.replacement.old_final_l": "order_bad_litres",
           "result.replacement.new_initial_l": "order_bad_litres"}.get(exc.field)
    return t(key) if key else t("order_result_invalid", field=exc.field)


def label(prefix: str, value: object) -> str:
    """A work-order type, priority or event kind in the reader's language (raw when unknown)."""
    if not value:
        return "—"
    key = f"{prefix}_{value}"
    return t(key) if has(key) else str(value)


class OrdersScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

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
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        table = self.query_one("#orders", DataTable)
        for key in ("col_order", "col_type", "col_status", "col_priority", "col_serial", "col_due"):
            table.add_column(t(key), key=key)
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        repo = self.app.enrolled_repo
        table = self.query_one("#orders", DataTable)
        table.clear()
        orders = repo.work_orders()
        self._ids = [o["id"] for o in orders]
        for o in orders:
            table.add_row(str(o["id"])[-8:], label("wo_type", o.get("type")), status_text(o.get("status")),
                          label("wo_prio", o.get("priority")), cell(fit_end(str(o.get("meter_serial") or ""), 14)),
                          format_local(o["due_at"])[:10] if o.get("due_at") else "")
        self.query_one("#orders-empty", Static).update("" if orders else t("orders_none"))
        self.query_one(SyncBar).refresh_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._ids):
            self.app.push_screen(OrderScreen(self._ids[event.cursor_row]))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_sync(self) -> None:
        self.app.action_sync()


class OrderScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("i", "start", t("key_start")),
        Binding("n", "note", t("key_note"), show=False),  # in the help (?): the footer fits 80 columns
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
        yield Static(plain(t("order_title", id=self.order_id[-8:])), classes="title")
        yield Static("", id="order-info")
        yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        table = self.query_one("#events", DataTable)
        table.add_column(t("col_date"), key="at")
        table.add_column(t("col_type"), key="kind")
        table.add_column(t("order_note"), key="notes", width=40)
        self.refresh_data()
        table.focus()

    def refresh_data(self) -> None:
        repo = self.app.enrolled_repo
        o = repo.work_order(self.order_id) or {}
        sp = repo._sps.get(o.get("service_point_id") or "") or {}
        lines = [
            f"{t('col_type')}: {label('wo_type', o.get('type'))}   {t('col_status')}: {status_text(o.get('status'))}"
            f"   {t('col_priority')}: {label('wo_prio', o.get('priority'))}",
            f"{t('col_serial')}: {o.get('meter_serial') or '—'}   {t('meter_address')}: {sp.get('address') or '—'}",
            str(o.get("description") or ""),
        ]
        if o.get("result"):
            lines.append(json.dumps(o["result"], ensure_ascii=False)[:150])
        self.query_one("#order-info", Static).update(plain("\n".join(lines)))
        table = self.query_one("#events", DataTable)
        table.clear()
        for e in repo.order_events(self.order_id):
            table.add_row(format_local(e["at"]) if e.get("at") else "", label("wo_event", e.get("kind")),
                          cell((e.get("notes") or "")[:40]))
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
            self.app.notify(incomplete_text(exc), severity="error", timeout=10)
            return
        self.app.notify(ok)
        self.app.after_local_write()
        self.refresh_data()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        repo = self.app.enrolled_repo
        self._guard(lambda: repo.start_order(self.order_id), t("order_started"))

    def action_note(self) -> None:
        repo = self.app.enrolled_repo

        def done(text: str | None) -> None:
            if text:
                self._guard(lambda: repo.add_note(self.order_id, text), t("order_note_saved"))

        self.app.push_screen(PromptScreen(t("order_note"), "text"), done)

    def action_reading(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self._checked_reading(parse_reading_m3(text))  # already parsed by the prompt

        self.app.push_screen(PromptScreen(t("reading_value"), "reading"), done)

    def _checked_reading(self, value_l: int) -> None:
        """The same plausibility rule as a route reading: a questioned value is confirmed first."""
        repo = self.app.enrolled_repo
        order = repo.work_order(self.order_id) or {}
        serial = str(order.get("meter_serial") or "")
        try:
            verdict = repo.judge(serial, value_l)
        except UnknownMeter:
            self.app.notify(t("err_unknown_meter", serial=serial), severity="error")
            return
        except EntryError as exc:
            self.app.notify(t(exc.key, **exc.params), severity="error")
            return

        def save(alarms: tuple[str, ...]) -> None:
            self._guard(lambda: repo.order_reading(self.order_id, value_l, alarms=alarms), t("order_reading_saved"))

        if verdict.ok:
            save(())
            return

        def decided(choice: str | None) -> None:
            if choice == "confirm":
                save((CONFIRMED_FLAG,))
            elif choice == "rollover":
                save((ReadingFlag.ROLLOVER.value,))
            elif choice == "reverse":
                save((ReadingFlag.REVERSE_FLOW.value,))

        from .reading import CheckScreen

        self.app.push_screen(CheckScreen(verdict, allow_observation=False), decided)

    def action_replace(self) -> None:
        repo = self.app.enrolled_repo

        def record(old: int, serial: str, new: int, confirmed: bool = False) -> None:
            try:
                self._guard(lambda: repo.record_replacement(self.order_id, old, serial, new, confirmed=confirmed),
                            t("order_replacement_saved", old=format_m3(old), new_serial=serial, new=format_m3(new)))
            except Implausible as exc:  # the removed meter's final register: ask, as for any reading
                from .reading import CheckScreen

                self.app.push_screen(
                    CheckScreen(exc.verdict, allow_observation=False),
                    lambda choice: record(old, serial, new, True) if choice in ("confirm", "rollover", "reverse")
                    else None)

        def done(values: tuple[int, str, int] | None) -> None:
            if values:
                record(*values)

        self.app.push_screen(ReplacementScreen(), done)

    def action_complete(self) -> None:
        repo = self.app.enrolled_repo
        o = repo.work_order(self.order_id) or {}
        if o.get("status") in (WorkOrderStatus.CREATED, WorkOrderStatus.ASSIGNED):
            self.app.notify(t("order_not_started"), severity="warning")
            return
        try:  # what completion would refuse is said before asking, not after
            repo.check_complete(self.order_id)
        except (IncompleteOrder, ResultError) as exc:
            self.app.notify(incomplete_text(exc), severity="error", timeout=10)
            return
        except OrderClosed as exc:
            self.app.notify(t("order_closed", status=status_text(exc.status)), severity="error")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._guard(lambda: repo.complete_order(self.order_id), t("order_completed"))

        self.app.push_screen(ConfirmScreen(t("complete_title"), t(
            "complete_question", id=self.order_id[-8:], type=label("wo_type", o.get("type")))), answered)

    def action_impossible(self) -> None:
        repo = self.app.enrolled_repo

        def done(reason: str | None) -> None:
            if reason:
                self._guard(lambda: repo.report_impossible(self.order_id, reason),
                            t("order_impossible_saved", reason=reason))

        self.app.push_screen(PromptScreen(t("order_reason"), "text"), done)


class PromptScreen(ModalScreen[str | None]):
    """One line of input; kind "reading" validates a register value before returning."""

    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

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
                self.query_one(ErrorLine).show(t(exc.key, **exc.params))
                return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplacementScreen(ModalScreen[tuple[int, str, int] | None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

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
            err.show(t(exc.key, **exc.params))
            return
        self.dismiss((old, serial, new))

    def action_cancel(self) -> None:
        self.dismiss(None)
