"""One meter: where it is, the expected range today, the last readings; entry starts here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from sync.plausibility import expected_bounds, last_known

from ..i18n import has, t
from ..repository import MeterInfo
from ..text import cell, plain
from ..validation import format_local, format_m3
from ..widgets.syncbar import SyncBar
from .dialogs import ConfirmScreen

if TYPE_CHECKING:
    from ..app import ReaderApp


class MeterScreen(Screen[None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    # the footer must fit 80 columns: sync (s / F5) and help are listed by `?`
    BINDINGS = [
        Binding("escape", "back", t("key_back")),
        Binding("l", "read", t("key_read")),
        Binding("enter", "read", t("key_read"), show=False),
        Binding("o", "observation", t("key_obs_short"), tooltip=t("key_skip_long")),
        Binding("c", "correct", t("key_correct")),
        Binding("n", "next", t("key_next"), tooltip=t("key_next_long")),
        Binding("p", "previous", t("key_prev"), tooltip=t("key_prev_long")),
        Binding("s", "sync", t("key_sync"), show=False),
    ]

    def __init__(self, serial: str, route_serials: list[str] | None = None) -> None:
        super().__init__()
        self.serial = serial
        self.route_serials = route_serials or []
        from .route import ScanSearch

        self._scan = ScanSearch(self)

    def on_key(self, event: events.Key) -> None:
        self._scan.key(event)  # scanning the next meter's barcode from here opens it

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="meter-head", classes="title")
        yield Static("", id="meter-info")
        yield Static("", id="meter-expected")
        yield Static("", id="meter-current", classes="ok")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield SyncBar(id="syncbar")
        yield Footer(show_command_palette=False)  # Ctrl+P is listed by ?: the keys need the width

    def on_mount(self) -> None:
        table = self.query_one("#history", DataTable)
        table.add_column(t("col_date"), key="date")
        table.add_column(t("col_value"), key="value")
        table.add_column(t("col_obs"), key="obs")
        table.add_column(t("col_source"), key="source")
        table.add_column(t("col_state"), key="state")
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        self._scan.reset()
        self.refresh_data()

    @property
    def info(self) -> MeterInfo:
        return self.app.enrolled_repo.meter(self.serial)

    def refresh_data(self) -> None:
        repo = self.app.enrolled_repo
        info = self.info
        sp = info.service_point
        self.query_one("#meter-head", Static).update(plain(
            t("meter_title", serial=self.serial) + f"  ·  {t('status_' + repo.meter_status(self.serial))}"
        ))
        lines = [f"{t('meter_address')}: {sp.get('address') or '—'}"]
        route = repo.route(str(sp.get("route_id") or info.meter.get("route_id") or ""))
        if route is not None and self.serial in self.route_serials:
            # where the reader is in the walk: the route's name (never its id) and the position
            lines.append(t("meter_position_in_route", route=route.name,
                           n=self.route_serials.index(self.serial) + 1, total=len(self.route_serials)))
        access = sp.get("access_notes") or info.meter.get("access_notes")
        if access:
            lines.append(f"{t('meter_access')}: {access}")
        self.query_one("#meter-info", Static).update(plain("\n".join(lines)))
        now = repo.clock()
        history = info.history()
        rng = expected_bounds(history, now, info.use_class)
        last = last_known(history, now)
        undated = last is not None and last.taken_at_ms is None
        self.query_one("#meter-expected", Static).update(
            t("meter_expected_undated" if undated else "meter_expected", low=format_m3(rng.low_l),
              high=format_m3(rng.high_l), daily=rng.daily_l)
            if rng else t("meter_expected_none")
        )
        cur = repo.current_reading(info)
        current = ""
        if cur is not None:
            if cur.value_l is not None:
                current = t("meter_current", value=format_m3(cur.value_l), when=format_local(cur.taken_at))
            else:
                current = t("meter_current_obs", code=cur.observation_code, when=format_local(cur.taken_at))
        self.query_one("#meter-current", Static).update(plain(current))
        table = self.query_one("#history", DataTable)
        table.clear()
        for r in info.readings[:12]:
            table.add_row(format_local(r.taken_at), format_m3(r.value_l), cell(r.observation_code or ""),
                          t(f"source_{r.source}") if has(f"source_{r.source}") else r.source,
                          t("superseded") if r.superseded else "")
        last_at, last_v = info.meter.get("last_read_at"), info.meter.get("last_value_l")
        if last_v is not None and all(r.taken_at != last_at for r in info.readings):
            # the value the office knows (dated or not: the check uses it either way), so the
            # reader sees history even on a first visit
            table.add_row(format_local(int(last_at)) if last_at is not None else t("no_date"), format_m3(int(last_v)),
                          "", t("source_reference"), "")
        self.query_one(SyncBar).refresh_status()

    def action_back(self) -> None:
        self.app.pop_screen()

    def _entry(self, supersedes: str | None = None, observation_only: bool = False) -> None:
        from .reading import ReadingScreen

        def saved(rid: str | None) -> None:
            if rid is None:
                self.refresh_data()
                return
            self._to_next_pending()

        self.app.push_screen(ReadingScreen(self.serial, supersedes=supersedes, observation_only=observation_only),
                             saved)

    def _offer_correction(self, observation_only: bool = False) -> None:
        """A second entry in the same cycle is a correction of the first, never a silent second reading."""
        cur = self.app.enrolled_repo.current_reading(self.info)
        if cur is None:
            self._entry(observation_only=observation_only)
            return
        what = (t("already_read_value", value=format_m3(cur.value_l)) if cur.value_l is not None
                else t("already_read_obs", code=cur.observation_code))

        def answered(yes: bool | None) -> None:
            if yes:
                self._entry(supersedes=cur.id, observation_only=observation_only)

        self.app.push_screen(ConfirmScreen(t("already_read_title"), t(
            "already_read_question", serial=self.serial, what=what, when=format_local(cur.taken_at))), answered)

    def action_read(self) -> None:
        self._offer_correction()

    def action_correct(self) -> None:
        cur = self.app.enrolled_repo.current_reading(self.info)
        self._entry(supersedes=cur.id if cur else None)

    def action_observation(self) -> None:
        self._offer_correction(observation_only=True)

    def _move(self, serial: str) -> None:
        self.serial = serial
        self.refresh_data()

    def action_next(self) -> None:
        if self.serial in self.route_serials:
            i = self.route_serials.index(self.serial)
            if i + 1 < len(self.route_serials):
                self._move(self.route_serials[i + 1])
                return
        self.app.notify(t("route_last"))

    def action_previous(self) -> None:
        if self.serial in self.route_serials:
            i = self.route_serials.index(self.serial)
            if i > 0:
                self._move(self.route_serials[i - 1])
                return
        self.app.notify(t("route_first"))

    def _to_next_pending(self) -> None:
        """After a save: on to the next pending meter of the route (walking order, wrapping)."""
        repo = self.app.enrolled_repo
        serials = self.route_serials
        start = serials.index(self.serial) if self.serial in serials else -1
        for step in range(1, len(serials) + 1):
            candidate = serials[(start + step) % len(serials)]
            if repo.meter_status(candidate) == "pending":
                self._move(candidate)
                self.app.notify(t("next_pending", serial=candidate))
                return
        self.refresh_data()
        if serials:
            self.app.notify(t("route_done"))

    def action_sync(self) -> None:
        self.app.action_sync()
