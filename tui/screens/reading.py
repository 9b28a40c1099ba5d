"""Reading entry: type, validate at once, confirm or explain, commit, then say so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import events, getters
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sync.plausibility import CONFIRMED_FLAG
from sync.vocab.readings import ReadingFlag

from ..i18n import t
from ..repository import MeterInfo
from ..text import plain
from ..validation import (
    EntryError,
    Issue,
    Verdict,
    format_local,
    format_m3,
    parse_reading_m3,
    parse_taken_at,
    validate,
)
from ..verdicts import issue_lines
from ..widgets.form import ErrorLine, Field

if TYPE_CHECKING:
    from ..app import ReaderApp


@dataclass(frozen=True)
class Entry:
    value_l: int | None
    taken_at: int
    observation_code: str | None
    lat: float | None
    lon: float | None
    photo_ref: str | None


def parse_gps(text: str) -> tuple[float | None, float | None]:
    raw = text.strip()
    if not raw:
        return None, None
    try:
        lat_s, lon_s = raw.replace(";", ",").split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError as exc:
        raise EntryError("err_gps_invalid") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise EntryError("err_gps_invalid")
    return lat, lon


class ReadingScreen(ModalScreen[str | None]):
    """Returns the committed reading id, or None when the reader backs out."""

    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [
        Binding("escape", "cancel", t("key_cancel")),
        Binding("f4", "pick_observation", t("key_skip")),
    ]

    def __init__(self, serial: str, supersedes: str | None = None, observation_only: bool = False) -> None:
        super().__init__()
        self.serial = serial
        self.supersedes = supersedes
        self.observation_only = observation_only
        self._pending: Entry | None = None

    def compose(self) -> ComposeResult:
        repo = self.app.enrolled_repo
        title = t("reading_correct_title" if self.supersedes else "reading_title", serial=self.serial)
        with VerticalScroll(id="dialog", classes="dialog"):
            yield Static(plain(title), classes="title")
            if not self.observation_only:
                yield Field(t("reading_value"), "value", placeholder=t("reading_value_placeholder"))
            yield Field(t("reading_date"), "date", value=format_local(repo.clock()))
            yield Field(t("reading_obs") + " [F4]", "obs")
            yield Field(t("reading_gps"), "gps")
            yield Field(t("reading_photo"), "photo")
            yield ErrorLine(id="error", classes="error")
            yield Label(f"Enter = {t('key_save')} · Esc = {t('key_cancel')} · F4 = {t('key_skip')}", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#value" if not self.observation_only else "#obs", Input).focus()
        if self.observation_only:
            self.action_pick_observation()

    @property
    def info(self) -> MeterInfo:
        return self.app.enrolled_repo.meter(self.serial)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_pick_observation(self) -> None:
        def chosen(code: str | None) -> None:
            if code:
                self.query_one("#obs", Input).value = code
                if self.observation_only:
                    self._submit()
            elif self.observation_only:
                self.dismiss(None)

        self.app.push_screen(ObservationScreen(), chosen)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def _error(self, exc: EntryError) -> None:
        self.query_one(ErrorLine).show(t(exc.key, **exc.params))

    def _parse(self) -> Entry:
        repo = self.app.enrolled_repo
        info = self.info
        value_text = "" if self.observation_only else self.query_one("#value", Input).value
        obs = self.query_one("#obs", Input).value.strip() or None
        if obs is not None:
            known = repo.observation(obs)
            if known is None:
                raise EntryError("err_obs_unknown", code=obs[:20])
            obs = known.code  # as the catalogue spells it
        value_l: int | None = None
        if value_text.strip():
            value_l = parse_reading_m3(value_text)
        elif obs is None:
            raise EntryError("reading_need_value_or_obs")
        # a correction replaces the entry it supersedes, so that entry is not "the last reading"
        history = info.history(excluding=self.supersedes)
        last_ms = max((p.taken_at_ms for p in history if p.taken_at_ms is not None), default=None)
        taken_at = parse_taken_at(self.query_one("#date", Input).value, repo.clock(), last_ms)
        lat, lon = parse_gps(self.query_one("#gps", Input).value)
        photo = self.query_one("#photo", Input).value.strip() or None
        code = repo.observation(obs) if obs else None
        if code is not None and code.requires_photo and not photo:
            raise EntryError("err_photo_required", code=obs)
        self._history = history
        return Entry(value_l, taken_at, obs, lat, lon, photo)

    def _submit(self) -> None:
        self.query_one(ErrorLine).clear()
        try:
            entry = self._parse()
            verdict = None
            if entry.value_l is not None:
                info = self.info
                verdict = validate(entry.value_l, self._history, entry.taken_at,
                                   register_max_l=info.register_max_l, use_class=info.use_class)
        except EntryError as exc:
            self._error(exc)
            return
        if verdict is None or verdict.ok or entry.observation_code:
            # an observation code is the reader's explanation; the value is kept as typed
            self._save(entry, ())
            return
        self._pending = entry

        def decided(choice: str | None) -> None:
            self._decide(entry, choice)

        self.app.push_screen(CheckScreen(verdict), decided)

    def _decide(self, entry: Entry, choice: str | None) -> None:
        if choice == "confirm":
            self._save(entry, (CONFIRMED_FLAG,))
        elif choice == "rollover":
            self._save(entry, (ReadingFlag.ROLLOVER.value,))
        elif choice == "reverse":
            self._save(entry, (ReadingFlag.REVERSE_FLOW.value,))
        elif choice == "observation":
            def chosen(code: str | None) -> None:
                if code:
                    self.query_one("#obs", Input).value = code
                    self._submit()  # re-checked with the code (e.g. a photo it requires)
            self.app.push_screen(ObservationScreen(), chosen)
        else:
            if not self.observation_only:
                self.query_one("#value", Input).focus()

    def _save(self, entry: Entry, alarms: tuple[str, ...]) -> None:
        repo = self.app.enrolled_repo
        # committed (fsync'd by SQLite's commit) before anything on screen says "saved"
        rid = repo.record_reading(
            self.serial, entry.value_l, taken_at=entry.taken_at, observation_code=entry.observation_code,
            lat=entry.lat, lon=entry.lon, photo_ref=entry.photo_ref, alarms=alarms, supersedes=self.supersedes,
        )
        if entry.value_l is None:
            msg = t("reading_obs_saved", serial=self.serial, code=entry.observation_code)
        elif self.supersedes:
            msg = t("reading_corrected", serial=self.serial, value=format_m3(entry.value_l))
        else:
            msg = t("reading_saved", serial=self.serial, value=format_m3(entry.value_l))
        self.app.notify(msg)
        self.app.after_local_write()
        self.dismiss(rid)


class CheckScreen(ModalScreen[str | None]):
    """A suspicious value: confirm, explain (rollover / reverse flow), add an observation, re-enter."""

    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [
        Binding("c", "choose('confirm')", t("key_confirm")),
        Binding("v", "choose('rollover')", t("btn_rollover")),
        Binding("i", "choose('reverse')", t("btn_reverse")),
        Binding("o", "choose('observation')", t("key_skip")),
        Binding("escape", "choose('reenter')", t("key_back")),
    ]

    def __init__(self, verdict: Verdict, allow_observation: bool = True) -> None:
        super().__init__()
        self.verdict = verdict
        self.allow_observation = allow_observation

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # rollover / reverse flow only explain a value below the previous one
        if action == "choose" and parameters and parameters[0] in ("rollover", "reverse"):
            return Issue.LOWER_THAN_LAST in self.verdict.issues
        if action == "choose" and parameters and parameters[0] == "observation":
            return self.allow_observation
        return True

    def compose(self) -> ComposeResult:
        v = self.verdict
        lines = issue_lines(v)
        with Vertical(id="check", classes="dialog warning"):
            yield Static(t("check_title"), classes="title")
            yield Static(plain("\n".join(lines)), id="check-text")
            options = [t("btn_confirm")]
            if Issue.LOWER_THAN_LAST in v.issues:
                options += [t("btn_rollover"), t("btn_reverse")]
            if self.allow_observation:
                options.append(t("btn_observation"))
            options.append(t("btn_reenter"))
            yield Static("\n".join(options), id="check-options", classes="hint")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class ObservationScreen(ModalScreen[str | None]):
    if TYPE_CHECKING:  # the reader app's own attributes, typed (Textual's typed `app` getter)
        app = getters.app(ReaderApp)

    BINDINGS = [Binding("escape", "cancel", t("key_cancel"))]

    def compose(self) -> ComposeResult:
        repo = self.app.enrolled_repo
        with Vertical(id="obs-dialog", classes="dialog"):
            yield Static(t("obs_title"), classes="title")
            yield OptionList(*[Option(plain(f"{c.code:<4} {c.description}" + (t("obs_replaces") if c.replaces_reading
                                                                             else "")),
                                      id=c.code) for c in repo.observation_codes()], id="obs-list")
            yield Label(t("obs_help"), classes="hint")

    def on_mount(self) -> None:
        self._typed = ""
        self.query_one(OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        """Typing a code's digits jumps to it (readers know the common codes by heart)."""
        ch = event.character
        if not ch or not ch.isalnum():
            return
        codes = [c.code for c in self.app.enrolled_repo.observation_codes()]
        typed = (self._typed + ch).upper()
        if not any(code.startswith(typed) for code in codes):
            typed = ch.upper()
        match = next((i for i, code in enumerate(codes) if code.startswith(typed)), None)
        if match is not None:
            self._typed = typed
            self.query_one(OptionList).highlighted = match
            event.stop()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
