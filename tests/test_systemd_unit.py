"""deploy/systemd/aquacis-gateway.service: the properties a zone gateway box relies on.

The unit is parsed as systemd reads it (repeated keys kept); where `systemd-analyze` is
installed it also verifies the unit's syntax and directives."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from aquacis.cli import app

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "systemd" / "aquacis-gateway.service"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line}"
        sections[current].append((key.strip(), value.strip()))
    return sections


def one(section: list[tuple[str, str]], key: str) -> str:
    values = [v for k, v in section if k == key]
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def every(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def test_stop_kills_the_whole_process_group_and_failures_restart() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]
    assert one(svc, "KillMode") == "control-group"  # the Litestream child dies with the gateway
    assert one(svc, "SendSIGKILL") == "yes"
    assert one(svc, "KillSignal") == "SIGTERM"
    assert 5 <= int(one(svc, "TimeoutStopSec")) <= 120
    assert one(svc, "Restart") == "on-failure"
    assert float(one(svc, "RestartSec")) > 0
    unit = parse_unit(UNIT.read_text())["Unit"]
    assert int(one(unit, "StartLimitBurst")) >= 3  # a broken config ends in `failed`, not a loop


def test_runs_as_a_dedicated_user_with_a_private_state_directory() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]
    user = one(svc, "User")
    assert user not in ("root", "0", "") and one(svc, "Group") == user
    state = one(svc, "StateDirectory")
    assert one(svc, "StateDirectoryMode") == "0700"
    db = dict(v.split("=", 1) for v in every(svc, "Environment"))["AQUACIS_GATEWAY_DB"]
    assert db.startswith(f"/var/lib/{state}/"), "the database must live in the unit's state directory"
    sysusers = (UNIT.parent / "aquacis.sysusers.conf").read_text().split()
    assert sysusers[sysusers.index("u") + 1] == user


def test_hardened() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
                       "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
                       "DevicePolicy": "closed", "SystemCallArchitectures": "native", "UMask": "0077"}.items():
        assert one(svc, key) == value, key
    assert one(svc, "CapabilityBoundingSet") == "" and one(svc, "AmbientCapabilities") == ""
    assert set(one(svc, "RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in one(svc, "SystemCallFilter")


def test_secrets_come_from_a_root_only_file_and_the_command_exists() -> None:
    svc = parse_unit(UNIT.read_text())["Service"]
    files = every(svc, "EnvironmentFile")
    assert "/etc/aquacis/gateway-secrets.env" in files
    for text in (UNIT.read_text(), *(p.read_text() for p in UNIT.parent.glob("*.example"))):
        for line in text.splitlines():
            if line.startswith(("AQUACIS_NODE_TOKEN", "AQUACIS_BROKER_URL")) or "Environment=AQUACIS_NODE" in line:
                assert line.rstrip().endswith("="), f"a secret value in a shipped file: {line}"
    argv = shlex.split(one(svc, "ExecStart"))
    assert argv[0].endswith("/bin/aquacis") and argv[1:3] == ["gateway", "run"]
    cmd = typer.main.get_command(app)
    for word in argv[1:3]:
        cmd = cmd.get_command(cmd.context_class(cmd), word)  # type: ignore[attr-defined]
        assert cmd is not None
    declared = {o for p in cmd.params for o in getattr(p, "opts", [])}
    envvars = {p.envvar for p in cmd.params if getattr(p, "envvar", None)}
    assert all(w.split("=")[0] in declared for w in argv[3:] if w.startswith("--"))
    # Every setting the shipped env files name is one `gateway run` reads.
    settings = {k for k, _ in (v.split("=", 1) for v in every(svc, "Environment"))} - {"PYTHONUNBUFFERED"}
    for example in UNIT.parent.glob("gateway*.env.example"):
        settings |= {line.split("=", 1)[0] for line in example.read_text().splitlines()
                     if line and not line.startswith("#")}
    assert settings and settings <= envvars, settings - envvars
    assert one(parse_unit(UNIT.read_text())["Install"], "WantedBy") == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is not installed (Debian package systemd)")
        pytest.skip("systemd-analyze is not installed; the parsed checks above still ran")
    text = UNIT.read_text().replace("/opt/aquacis/venv/bin/aquacis", sys.executable)
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (res.stdout + res.stderr).splitlines()
                if line.strip() and "EnvironmentFile" not in line and "/etc/aquacis" not in line]
    assert res.returncode == 0 or not problems, problems
    assert not problems, problems
