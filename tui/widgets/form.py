"""Small form helpers: a labelled input and an error line."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Input, Label, Static


class Field(Horizontal):
    """A label beside a one-line input: a five-field form fits in 24 lines."""

    def __init__(self, label: str, input_id: str, value: str = "", placeholder: str = "",
                 password: bool = False) -> None:
        super().__init__(classes="field")
        self._label = label
        self._input = Input(value=value, placeholder=placeholder, id=input_id, password=password)

    def compose(self) -> ComposeResult:
        yield Label(self._label)
        yield self._input


class ErrorLine(Static):
    """Where a refused entry explains itself; empty when all is well."""

    def show(self, text: str) -> None:
        self.update(Content(text))  # messages quote what was typed: never read as markup
        self.set_class(bool(text), "-visible")

    def clear(self) -> None:
        self.show("")
