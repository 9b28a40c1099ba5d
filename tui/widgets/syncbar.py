"""The always-visible banner: online/offline (and with whom), pending changes, last sync,
refusals. One line, on every screen, so the reader always knows whether captured data has
left the device."""

from __future__ import annotations

from textual.content import Content
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
        online = getattr(app, "online", None)
        if online:
            net = t("net_online", peer=t(f"peer_{getattr(app, 'online_peer', None) or 'cloud'}"))
        else:
            net = t("net_offline") if online is False else t("net_unknown")
        parts = [net, t("sync_pending", n=repo.pending_count())]
        running = getattr(app, "sync_running_peer", None)
        last = repo.last_sync()
        if running:
            parts.append(t("sync_running", peer=t(f"peer_{running}")))
        elif last is None:
            parts.append(t("sync_never"))
        else:
            when = format_local(last.at)  # DD/MM/AAAA HH:MM → DD/MM HH:MM: the banner fits 80 columns
            parts.append(t("sync_last", when=when[:5] + when[10:], peer=t(f"peer_{last.peer}")))
        n_ref = len(repo.refusals())
        if n_ref:
            parts.append(t("sync_refusals", n=n_ref))
        problem = getattr(app, "sync_problem", "")
        if problem:
            parts.append(problem)
        self.set_class(bool(n_ref) or bool(problem), "-warning")
        self.set_class(bool(online), "-online")
        self.update(Content(" · ".join(parts)))  # server reasons inside: never read as markup
