"""The Textual app for meter readers and technicians, on the handheld's local edge store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import CommandPalette
from textual.notifications import SeverityLevel

from edge.store import EdgeStore

from .i18n import t
from .palette import ReaderCommands, ReaderPalette
from .repository import Repository, read_enrolment
from .widgets.syncbar import SyncBar

if TYPE_CHECKING:  # httpx/tenacity load with the first sync, not at start-up
    from .syncer import Outcome, TransportFactory

AUTO_SYNC_S = 60.0


def reader_reason(error: str) -> str:
    """A failed round's reason in the reader's words (the technical text stays in the sync log)."""
    if error.startswith("HTTP "):
        status = error[5:8]
        return t("reason_server_error" if status.startswith("5") else "reason_refused", status=status)
    return t("reason_unreachable")


class ReaderApp(App[None]):
    CSS_PATH = "app.tcss"
    COMMANDS = {ReaderCommands}  # Spanish commands instead of Textual's English system ones
    TITLE = t("app_title")
    BINDINGS = [
        Binding("f5", "sync", t("key_sync"), show=False),
        Binding("f1", "help", t("key_help"), show=False),
        Binding("question_mark", "help", t("key_help")),
        Binding("ctrl+q", "quit", t("key_quit"), show=False),
        # our own palette binding: the default one is labelled in English ("palette")
        Binding("ctrl+p", "command_palette", t("key_palette"), show=False, priority=True),
    ]

    def __init__(self, db_path: str | Path, *, transport_factory: TransportFactory | None = None,
                 auto_sync_s: float | None = AUTO_SYNC_S) -> None:
        super().__init__()
        self.db_path = str(db_path)
        self._transport_factory = transport_factory
        self.auto_sync_s = auto_sync_s
        self.repo: Repository | None = None
        self.sync_running_peer: str | None = None
        self.sync_problem = ""
        self.last_outcome: Outcome | None = None
        # the banner's state: None until a sync or a probe has told us
        self.online: bool | None = None
        self.online_peer: str | None = None

    @property
    def transport_factory(self) -> TransportFactory:
        if self._transport_factory is None:
            from .syncer import http_transport

            self._transport_factory = http_transport
        return self._transport_factory

    def on_mount(self) -> None:
        enrolment = read_enrolment(self.db_path)
        if enrolment is None:
            from .screens.enrol import EnrolScreen

            self.push_screen(EnrolScreen())
            return
        self.repo = Repository(EdgeStore.open(self.db_path, site_id=enrolment.site_id))
        self._home()

    def _home(self) -> None:
        from .screens.routes import RoutesScreen

        self.push_screen(RoutesScreen())
        if self.auto_sync_s:
            self.set_interval(self.auto_sync_s, self._auto_sync)
            self.set_timer(1.0, self._auto_sync)  # the banner says online/offline from the start

    @property
    def enrolled_repo(self) -> Repository:
        """The repository, for the screens shown only once the handheld is enrolled."""
        if self.repo is None:
            raise RuntimeError("the handheld is not enrolled yet")
        return self.repo

    def enrolled(self, repo: Repository, outcome: Outcome) -> None:
        self.repo = repo
        self._after_sync(outcome, refresh_screen=False)
        self.pop_screen()
        self._home()
        self.notify(t("enrol_downloaded", routes=len(repo.routes()),
                      meters=sum(r.total for r in repo.routes()), orders=len(repo.work_orders())))

    # ---- sync ---------------------------------------------------------------------------------
    def action_sync(self) -> None:
        if self.repo is None or self.sync_running_peer:
            return
        self._start_sync(probe=False)

    def _auto_sync(self) -> None:
        if self.repo is None or self.sync_running_peer:
            return
        self._start_sync(probe=True)

    def after_local_write(self) -> None:
        self.refresh_status()

    def _start_sync(self, probe: bool) -> None:
        assert self.repo is not None
        enrol = self.repo.enrolment()
        self.sync_running_peer = "gateway" if enrol and enrol.gateway_url else "cloud"
        self.refresh_status()
        self._sync_worker(probe)

    @work(thread=True, exclusive=True, group="sync")
    def _sync_worker(self, probe: bool) -> None:
        assert self.repo is not None
        from .syncer import Outcome, sync_once

        try:
            outcome = sync_once(self.repo, self.transport_factory, probe=probe)
        except Exception as exc:  # noqa: BLE001 - a sync bug must not take down the reader's app
            outcome = Outcome(False, None, error=f"{type(exc).__name__}: {exc}")
        self.call_from_thread(self._after_sync, outcome, probe)

    def _after_sync(self, outcome: Outcome, probe: bool = False, refresh_screen: bool = True) -> None:
        self.sync_running_peer = None
        self.last_outcome = outcome
        assert self.repo is not None
        self.online = bool(outcome.ok and outcome.peer is not None)
        self.online_peer = outcome.peer.kind if outcome.ok and outcome.peer is not None else None
        if outcome.ok and outcome.peer is not None:
            self.sync_problem = ""
            self.repo.reload()
            if not probe or outcome.pushed or outcome.pulled:  # a background round that moved nothing is quiet
                self.notify(t("sync_ok", peer=t(f"peer_{outcome.peer.kind}"), pushed=outcome.pushed,
                              pulled=outcome.pulled))
            if outcome.refused:
                self.notify(t("sync_refused_some", n=outcome.refused), severity="warning", timeout=10)
        elif outcome.credential_rejected:
            self.sync_problem = t("err_credential_expired")
            self.notify(self.sync_problem, severity="error", timeout=15)
        elif outcome.attempts:
            last = outcome.attempts[-1]
            self.sync_problem = ""
            self.notify(t("sync_failed", peer=t(f"peer_{last.peer}"), reason=reader_reason(last.error)),
                        severity="warning")
        elif not probe:
            self.notify(t("sync_no_peer"), severity="warning")
        if not refresh_screen:
            return
        self.refresh_status()
        screen = self.screen
        refresh = getattr(screen, "refresh_data", None)
        if callable(refresh):
            refresh()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Notifications quote data (serials, typed reasons, server errors): plain text by default."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # ---- help and the command palette, in the reader's language ------------------------------
    def action_help(self) -> None:
        from .screens.dialogs import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.screen))

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):  # type: ignore[arg-type]
            self.push_screen(ReaderPalette())

    def reader_commands(self) -> Iterable[tuple[str, str, Callable[[], object]]]:
        yield t("cmd_sync"), t("cmd_sync_help"), self.action_sync
        yield t("cmd_help"), t("cmd_help_help"), self.action_help
        if self.repo is not None:
            yield t("cmd_orders"), t("cmd_orders_help"), self._open_orders
            yield t("cmd_refusals"), t("cmd_refusals_help"), self._open_refusals
        yield t("cmd_quit"), t("cmd_quit_help"), self.action_quit

    def _open_orders(self) -> None:
        from .screens.orders import OrdersScreen

        self.push_screen(OrdersScreen())

    def _open_refusals(self) -> None:
        from .screens.refusals import RefusalsScreen

        self.push_screen(RefusalsScreen())

    def refresh_status(self) -> None:
        for bar in self.screen.query(SyncBar):
            bar.refresh_status()

    def on_unmount(self) -> None:
        if self.repo is not None:
            self.repo.store.close()
