"""A virtual list of a route's meters: renders only the visible lines (Textual's line API).

A DataTable measures every cell of every row when rows are added, which costs seconds on a
2,000-meter route on a field laptop; this list formats a row only when it is on screen, so
opening a route is O(visible rows). Columns have fixed widths chosen for 80 columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

# (header key, width); the address takes what is left at 80 columns
WIDTHS = (4, 14, 32, 10, 13)
SERIAL_COLUMN = 1


def fit(text: str, width: int) -> str:
    return text[:width].ljust(width) if len(text) <= width else text[: width - 1] + "…"


def fit_end(text: str, width: int) -> str:
    """Cut from the left: a serial's distinguishing end (…Z01-000123) stays visible."""
    return text.ljust(width) if len(text) <= width else "…" + text[len(text) - width + 1:]


def format_row(cells: Sequence[str]) -> str:
    return " ".join((fit_end if i == SERIAL_COLUMN else fit)(str(c), w)
                    for i, (c, w) in enumerate(zip(cells, WIDTHS, strict=False)))


class LazyRows(Sequence[tuple[str, ...]]):
    """Rows made on first access: a 2,000-meter route formats only what is shown."""

    def __init__(self, n: int, make: Callable[[int], tuple[str, ...]]) -> None:
        self._n = n
        self._make = make
        self._cache: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> tuple[str, ...]:  # type: ignore[override]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        row = self._cache.get(index)
        if row is None:
            row = self._cache[index] = self._make(index)
        return row


class MeterList(ScrollView, can_focus=True):
    """Rows are tuples of display strings; `Selected` carries the row index."""

    COMPONENT_CLASSES = {"meterlist--cursor", "meterlist--pending", "meterlist--done"}
    DEFAULT_CSS = """
    MeterList { height: 1fr; }
    MeterList > .meterlist--cursor { background: $accent; color: $text; text-style: bold; }
    MeterList > .meterlist--done { color: $text-muted; }
    MeterList > .meterlist--pending { color: $text; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("enter", "select", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class Selected(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: Sequence[tuple[str, ...]] = []
        self.done: Sequence[bool] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: Sequence[tuple[str, ...]], done: Sequence[bool], keep_cursor: bool = True) -> None:
        self.rows = rows
        self.done = done
        self.virtual_size = Size(sum(WIDTHS) + len(WIDTHS), len(rows))
        self.cursor = min(self.cursor if keep_cursor else 0, max(len(rows) - 1, 0))
        self.refresh()

    def watch_cursor(self, value: int) -> None:
        height = max(self.scrollable_content_region.height, 1)
        top = round(self.scroll_offset.y)
        if value < top:
            self.scroll_to(y=value, animate=False)
        elif value >= top + height:
            self.scroll_to(y=value - height + 1, animate=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.scrollable_content_region.width
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        if index == self.cursor and self.has_focus:
            style = self.get_component_rich_style("meterlist--cursor")
        elif index == self.cursor:
            style = self.get_component_rich_style("meterlist--cursor") + Style(bold=False)
        elif self.done[index]:
            style = self.get_component_rich_style("meterlist--done")
        else:
            style = self.get_component_rich_style("meterlist--pending")
        text = format_row(self.rows[index])
        return Strip([Segment(text.ljust(max(width + scroll_x, len(text))), style)]).crop(scroll_x, scroll_x + width)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.scrollable_content_region.height - 1, 1))

    def action_jump(self, where: int) -> None:
        if self.rows:
            self.cursor = where if where >= 0 else len(self.rows) - 1

    def action_select(self) -> None:
        if self.rows:
            self.post_message(self.Selected(self.cursor))

    async def _on_click(self, event: object) -> None:  # mouse is optional; keyboard does everything
        offset = getattr(event, "y", None)
        if offset is not None and self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, int(offset) + round(self.scroll_offset.y)))
