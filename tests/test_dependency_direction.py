"""Dependencies flow one way (DESIGN.md; brief): `sync` <- `edge` <- `gateway`/`tui`, `sync` <- `cloud`;
firmware-sim touches the others only over the wire; only the CLI assembly `aquacis` may import
every part, and no part imports it.

Every `import` in every .py file of a part counts, wherever it sits (module top, function body,
`TYPE_CHECKING` block): a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# part (import name) -> its folder in the repository
FOLDERS = {
    "sync": "sync",
    "edge": "edge",
    "gateway": "gateway",
    "tui": "tui",
    "cloud": "cloud",
    "firmware_sim": "firmware-sim",
    "aquacis": "aquacis",
}
OURS = frozenset(FOLDERS)

# part -> the parts of ours it may import (itself included)
ALLOWED = {
    "sync": {"sync"},
    "edge": {"edge", "sync"},
    "gateway": {"gateway", "edge", "sync"},
    "tui": {"tui", "edge", "sync"},
    "cloud": {"cloud", "sync"},
    "firmware_sim": {"firmware_sim"},
    "aquacis": set(OURS),
}

def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`; relative imports stay inside
    their own package and are left out."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def violations(part: str, sources: dict[str, str]) -> list[str]:
    """Imports of ours that `part` may not make, from {repo-relative path: source}."""
    found = []
    for rel, source in sources.items():
        for line, module in imported_modules(source):
            top = module.split(".")[0]
            if top in OURS and top not in ALLOWED[part]:
                found.append(f"{rel}:{line} imports {module}")
    return found


def _sources(part: str) -> dict[str, str]:
    files = sorted((ROOT / FOLDERS[part]).rglob("*.py"))
    return {f.relative_to(ROOT).as_posix(): f.read_text(encoding="utf-8") for f in files}


@pytest.mark.parametrize("part", sorted(FOLDERS))
def test_each_part_imports_only_what_it_may(part: str) -> None:
    sources = _sources(part)
    assert sources, f"no sources found for {part} in {FOLDERS[part]}/"
    assert violations(part, sources) == []


def test_no_part_but_the_assembly_may_import_aquacis() -> None:
    assert [part for part, allowed in ALLOWED.items() if "aquacis" in allowed] == ["aquacis"]


def test_the_scan_sees_every_form_of_import() -> None:
    """The check can fail: plain, aliased, from-, lazy and TYPE_CHECKING imports are all found."""
    source = (
        "import os\nimport cloud.db as d\nfrom gateway import lns\nfrom . import sibling\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tui.app import App\n"
        "def f():\n    import aquacis.cli\n"
    )
    assert sorted(imported_modules(source)) == [
        (1, "os"), (2, "cloud.db"), (3, "gateway"), (5, "typing"), (7, "tui.app"), (9, "aquacis.cli"),
    ]
    assert violations("edge", {"edge/x.py": source}) == [
        "edge/x.py:2 imports cloud.db", "edge/x.py:3 imports gateway", "edge/x.py:7 imports tui.app",
        "edge/x.py:9 imports aquacis.cli",
    ]
    assert violations("gateway", {"gateway/x.py": source}) == [
        "gateway/x.py:2 imports cloud.db", "gateway/x.py:7 imports tui.app", "gateway/x.py:9 imports aquacis.cli",
    ]
    assert violations("aquacis", {"aquacis/x.py": source}) == []
