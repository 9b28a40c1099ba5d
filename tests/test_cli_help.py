"""`--help` of every `aquacis` command keeps the text in square brackets (`[cloud]`,
`[default: …]`, `[[station]]`): help is plain text, not Rich markup (docs/configuration.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main
from typer.testing import CliRunner

from aquacis.cli import app

BRACKETED = re.compile(r"\[\[?[^\[\]]+\]\]?")


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    # typer carries its own copy of click: groups are told by their `commands`, not by class
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_bracketed_help_text_survives_in_every_command() -> None:
    root = typer.main.get_command(app)
    runner = CliRunner()
    checked = 0
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = [_flat(m) for t in texts for m in BRACKETED.findall(t)]
        if not wanted:
            continue
        out = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert out.exit_code == 0, (path, out.output)
        shown = _flat(out.output)
        missing = [w for w in wanted if w not in shown]
        assert not missing, f"aquacis {' '.join(path)} --help lost {missing}"
        checked += len(wanted)
    assert checked >= 5  # [gateway.run], [[station]], [default: …] of serve and the gateway at least


def test_the_known_victims_are_shown() -> None:
    runner = CliRunner()
    gw = _flat(runner.invoke(app, ["gateway", "run", "--help"], terminal_width=200).output)
    assert "[gateway.run]" in gw and "[[station]]" in gw and "[default: aquacis-gw-<site_id>]" in gw
    serve = _flat(runner.invoke(app, ["cloud", "serve", "--help"], terminal_width=200).output)
    assert "[default: 127.0.0.1]" in serve and "[cloud]" in serve
