"""Text from data (addresses, descriptions, what a reader typed) shown as it is: Textual reads
plain strings as markup, and a "[/]" in an address or a typed value ended the app."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content


def plain(text: object) -> Content:
    """For Static / Label / option prompts."""
    return Content(str(text))


def cell(text: object) -> Text:
    """For DataTable cells."""
    return Text(str(text))
