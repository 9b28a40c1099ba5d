"""firmware_sim talks to the rest only over the wire: it imports none of the other components."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"sync", "edge", "gateway", "cloud", "tui", "aquacis"}


def test_firmware_sim_imports_no_other_component() -> None:
    root = Path(__file__).resolve().parents[2] / "firmware-sim"
    offenders = []
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{f.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert list(root.rglob("*.py")), "firmware-sim sources not found"
    assert offenders == []
