"""A node credential kept in a file (`aquacis cloud add-node --credential-file`): read it back
bounded, and write it so that only its owner can read it and a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 1024  # a credential is a few hundred bytes; anything bigger is not one


def read_credential(path: Path) -> dict[str, Any] | None:
    """The credential in `path`, or None when there is none or it is not a credential (a
    truncated or foreign file is replaced by a new registration, never trusted)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("token"), str) or not isinstance(doc.get("site_id"), str):
        return None
    return doc


def write_credential(path: Path, cred: dict[str, Any]) -> None:
    """Write atomically with mode 600: a temporary file beside it, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cred, f, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
