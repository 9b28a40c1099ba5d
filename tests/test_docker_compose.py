"""The compose file parses and every `aquacis …` command it runs exists in the CLI.

No Docker engine runs here, so this is the check that keeps docker/ honest: a renamed
command or option breaks this test, not a production deployment.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from aquacis.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"


def _dockerfile_entrypoint(build: dict) -> list[str]:
    text = (ROOT / build["dockerfile"]).read_text()
    m = re.findall(r"^ENTRYPOINT\s+(\[.*\])", text, re.M)
    return yaml.safe_load(m[-1]) if m else []


def _dockerfile_cmd(build: dict) -> list[str]:
    text = (ROOT / build["dockerfile"]).read_text()
    m = re.findall(r"^CMD\s+(\[.*\])", text, re.M)
    return yaml.safe_load(m[-1]) if m else []


def _aquacis_invocations(service: dict) -> list[list[str]]:
    entry = service.get("entrypoint") or _dockerfile_entrypoint(service["build"])
    command = service.get("command") or _dockerfile_cmd(service["build"])
    argv = list(entry) + list(command)
    if argv[0].endswith(".sh"):
        # An entry script ends in `exec aquacis <words> "$@"`: its words prefix the command.
        script = (ROOT / "docker" / Path(argv[0]).name).read_text()
        m = re.search(r'^exec aquacis (.*?) "\$@"$', script, re.M)
        assert m, f"{argv[0]} does not exec aquacis"
        return [m.group(1).split() + list(command)]
    if argv[:2] == ["sh", "-c"]:
        script = " ".join(argv[2:])
        found = []
        for part in re.split(r"[;&|>]", script):
            words = shlex.split(part.replace("$$", "$"), posix=True)
            words = [w for w in words if w != "exec"]
            if words and words[0] == "aquacis":
                found.append(words[1:])
        return found
    assert argv[0] == "aquacis", f"unexpected entrypoint {argv}"
    return [argv[1:]]


def _is_group(cmd: object) -> bool:
    # typer may ship its own click; duck-type instead of isinstance(click.Group).
    return hasattr(cmd, "list_commands")


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    cmd: Any = typer.main.get_command(app)
    rest = list(argv)
    while _is_group(cmd) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = cmd.get_command(cmd.context_class(cmd), name)
        assert sub is not None, f"`aquacis … {name}` does not exist"
        cmd = sub
    return cmd, rest


def test_compose_parses_and_has_the_stack():
    compose = yaml.safe_load(COMPOSE.read_text())
    assert {"cloud", "postgres", "mosquitto", "gateway", "simulator"} <= set(compose["services"])


def test_every_compose_command_exists_in_the_cli():
    compose = yaml.safe_load(COMPOSE.read_text())
    checked = 0
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        for argv in _aquacis_invocations(service):
            cmd, rest = _resolve(argv)
            assert not _is_group(cmd), f"{name}: `{argv}` names a group, not a command"
            declared = {o for p in cmd.params for o in getattr(p, "opts", [])}
            for word in rest:
                if word.startswith("--"):
                    assert word.split("=")[0] in declared, f"{name}: {word} is not an option of {argv[:2]}"
            checked += 1
    assert checked >= 5
