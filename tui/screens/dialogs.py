"""Small modal dialogs shared by the screens: a yes/no confirmation and the key help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..i18n import has, t
from ..text import plain


class ConfirmScreen(ModalScreen[bool]):
    """Asks before something that cannot be undone; `s` (sí) / Enter confirm, `n` / Esc do not."""

    BINDINGS = [
        Binding("s", "answer(True)", t("key_yes")),
        Binding("enter", "answer(True)", t("key_yes"), show=False),
        Binding("y", "answer(True)", t("key_yes"), show=False),  # English keyboards and habits
        Binding("n", "answer(False)", t("key_no")),
        Binding("escape", "answer(False)", t("key_no"), show=False),
    ]

    def __init__(self, title: str, question: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog warning", id="confirm"):
            yield Static(self.title_text, classes="title")
            yield Static(plain(self.question), id="confirm-text")
            yield Static(t("confirm_hint"), classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def key_label(key: str) -> str:
    names = {"escape": "Esc", "enter": "Enter", "question_mark": "?", "ctrl+q": "Ctrl+Q", "ctrl+p": "Ctrl+P",
             "up": "↑", "down": "↓", "pageup": "RePág", "pagedown": "AvPág"}
    return names.get(key, key.upper() if key.startswith("f") and key[1:].isdigit() else key)


class HelpScreen(ModalScreen[None]):
    """`?` / F1: what this screen does and every key it answers to, in the reader's language."""

    BINDINGS = [Binding("escape", "close", t("key_back")), Binding("question_mark", "close", show=False),
                Binding("f1", "close", show=False), Binding("enter", "close", show=False)]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        lines = []
        seen: set[str] = set()
        bindings = [*getattr(self.under, "BINDINGS", []), *getattr(self.app, "BINDINGS", [])]
        for b in bindings:
            if not isinstance(b, Binding) or not b.description:
                continue
            for key in b.key.split(","):
                key = key.strip()
                if key in seen:
                    continue
                seen.add(key)
                lines.append(f"  {key_label(key):<8} {b.tooltip or b.description}")
        key = f"help_{type(self.under).__name__}"
        intro = t(key) if has(key) else ""
        with Vertical(classes="dialog", id="help"):
            yield Static(t("help_title"), classes="title")
            if intro:
                yield Static(intro, id="help-intro")
            yield Static(plain("\n".join(lines)), id="help-keys")
            yield Static(t("help_close"), classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
