"""The always-visible sync status line: pending changes, last sync and with whom, refusals."""

from __future__ import annotations

from textual.widgets import Static

from ..i18n import t
from ..validation import format_local


class SyncBar(Static):
    """Rendered from the app's repository; `refresh_status()` re-reads it."""

    DEFAULT_CSS = ""

    def on_mount(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        app = self.app
        repo = getattr(app, "repo", None)
        if repo is None:
            self.update("")
            return
        parts = [t("sync_pending", n=repo.pending_count())]
        running = getattr(app, "sync_running_peer", None)
        last = repo.last_sync()
        if running:
            parts.append(t("sync_running", peer=t(f"peer_{running}")))
        elif last is None:
            parts.append(t("sync_never"))
        else:
            parts.append(t("sync_last", when=format_local(last.at), peer=t(f"peer_{last.peer}")))
        n_ref = len(repo.refusals())
        if n_ref:
            parts.append(t("sync_refusals", n=n_ref))
        problem = getattr(app, "sync_problem", "")
        if problem:
            parts.append(problem)
        self.set_class(bool(n_ref) or bool(problem), "-warning")
        self.update(" · ".join(parts))
