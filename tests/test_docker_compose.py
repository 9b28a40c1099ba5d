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


def _with_build(compose: dict, service: dict) -> dict:
    """A service that runs an image another service builds (the simulator) gets that build."""
    if "build" in service or "image" not in service:
        return service
    for other in compose["services"].values():
        if other.get("image") == service["image"] and "build" in other:
            return {**service, "build": other["build"]}
    return service


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
        service = _with_build(compose, service)
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
    assert checked >= 9


# --- the properties a utility's operations team relies on (issue 15) ---------------------

def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must name a condition for each dependency"
    return {name: spec["condition"] for name, spec in deps.items()}


def _cloud_command(service: dict) -> list[str]:
    return list(service.get("command") or [])


def _one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def test_dependants_wait_for_health_or_completion() -> None:
    services = _compose()["services"]
    waited = 0
    for name, service in services.items():
        for dep, condition in _depends(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
                test = services[dep]["healthcheck"]["test"]
                assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
            else:
                assert condition == "service_completed_successfully", (
                    f"{name} -> {dep}: {condition} starts before {dep} can serve")
                assert _one_shot(services[dep]), f"{dep} is waited on to complete but restarts"
            waited += 1
    assert waited >= 10
    # Every long-running service that others wait on is healthy-checked.
    for name in ("postgres", "mosquitto", "cloud", "gateway"):
        assert "healthcheck" in services[name], name


def test_a_one_shot_migration_runs_before_anything_uses_the_database() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    assert _cloud_command(migrate) == ["migrate"] and _one_shot(migrate)
    assert _depends(migrate) == {"postgres": "service_healthy"}

    def after_migrate(name: str, seen: frozenset[str] = frozenset()) -> bool:
        deps = _depends(services[name])
        if deps.get("migrate") == "service_completed_successfully":
            return True
        return any(after_migrate(d, seen | {name}) for d in deps if d not in seen and d != "postgres")

    db_users = [n for n, s in services.items() if s.get("image") == "aquacis-cloud:local" and n != "migrate"]
    assert set(db_users) >= {"cloud", "billing-worker", "stamp-worker", "notify-worker", "seed", "enrol"}
    for name in db_users:
        assert after_migrate(name), f"{name} may start before the migration completed"
    # The replicas do not race to migrate themselves: the shared env file turns it off.
    assert "AQUACIS_AUTO_MIGRATE=false" in (ROOT / "docker" / "env" / "cloud.env").read_text().splitlines()


def test_the_workers_run() -> None:
    services = _compose()["services"]
    commands = {n: _cloud_command(s) for n, s in services.items() if s.get("image") == "aquacis-cloud:local"}
    # (that these are real CLI commands: test_every_compose_command_exists_in_the_cli)
    for worker, argv in (("billing-worker", ["billing-worker"]), ("stamp-worker", ["cfdi", "stamp-worker"]),
                         ("notify-worker", ["cfdi", "notify-worker"])):
        assert commands.get(worker) == argv, worker
        assert "--once" not in argv
        assert services[worker].get("restart") == "unless-stopped"


URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^@\s/]+@", re.I)
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|DB_URL|BROKER_URL", re.I)


def _secret_values(mapping: dict[str, str], where: str) -> None:
    for key, value in mapping.items():
        value = "" if value is None else str(value)
        assert not URL_WITH_PASSWORD.search(value), f"{where}: {key} carries a password in a URL"
        if SECRET_WORDS.search(key) and not key.endswith("_FILE"):
            assert value == "", f"{where}: {key} has a literal value; use a Docker secret"


def test_no_secret_is_written_in_the_compose_file_or_the_env_files() -> None:
    compose = _compose()
    text = COMPOSE.read_text()
    assert not URL_WITH_PASSWORD.search(text)
    # No ${VAR} interpolation from the operator's shell (where a secret could slip in): a `$`
    # meant for the container's shell is written `$$`.
    assert not re.search(r"(?<!\$)\$(?!\$)", text.replace("$$", "")), "unescaped $ in compose.yaml"
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment as a mapping"
        _secret_values(env, f"compose {name}")
        for env_file in service.get("env_file") or []:
            path = (COMPOSE.parent / env_file).resolve()
            pairs = dict(line.split("=", 1) for line in path.read_text().splitlines()
                         if line.strip() and not line.startswith("#"))
            _secret_values(pairs, env_file)
    pg = compose["services"]["postgres"]
    assert "POSTGRES_PASSWORD" not in pg["environment"] and pg["environment"]["POSTGRES_PASSWORD_FILE"].startswith(
        "/run/secrets/")
    # Every secret is a file under docker/secrets/, which git and the image build context ignore.
    for name, spec in compose["secrets"].items():
        assert set(spec) == {"file"} and spec["file"].startswith("./secrets/"), name
    assert "docker/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "docker/secrets" in (ROOT / ".dockerignore").read_text().splitlines()
    # Services that talk to the database get its URL as a secret, never in a command line.
    for name, service in compose["services"].items():
        assert not any("postgresql://" in str(w) for w in service.get("command") or []), name
        if service.get("image") == "aquacis-cloud:local":
            targets = {s["target"] if isinstance(s, dict) else s for s in service.get("secrets", [])}
            assert "AQUACIS_DB_URL" in targets, name


def test_init_secrets_creates_every_secret_once(tmp_path: Path) -> None:
    import shutil
    import subprocess

    docker = tmp_path / "docker"
    docker.mkdir()
    shutil.copy(ROOT / "docker" / "init-secrets.sh", docker)
    subprocess.run(["sh", str(docker / "init-secrets.sh")], check=True, capture_output=True)
    made = {p.name: p.read_text() for p in (docker / "secrets").iterdir()}
    wanted = {Path(spec["file"]).name for spec in _compose()["secrets"].values()}
    assert set(made) == wanted
    assert len(made["postgres_password"]) >= 32 and made["postgres_password"] in made["db_url"]
    assert made["mqtt_gateway_password"] in made["gateway_broker_url"]
    assert oct((docker / "secrets").stat().st_mode & 0o777) == "0o700"
    subprocess.run(["sh", str(docker / "init-secrets.sh")], check=True, capture_output=True)
    assert {p.name: p.read_text() for p in (docker / "secrets").iterdir()} == made  # kept, not rotated


def test_secrets_become_settings_without_being_evaluated(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "AQUACIS_DB_URL").write_text("postgresql://u:p$(touch pwned)`touch pwned2`@h/db")
    (tmp_path / "AQUACIS_SMTP_PASSWORD").write_text("")  # empty: not set
    (tmp_path / "AQUACIS_LOG_LEVEL").write_text("debug")  # the environment wins
    (tmp_path / "AQUACIS_X$(touch pwned3)").write_text("x")  # not a setting name
    (tmp_path / "csd.cer").write_text("cer")
    (tmp_path / "csd.key").write_text("key")
    script = f". {ROOT / 'docker' / 'secrets.sh'}; env"
    res = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "AQUACIS_SECRETS_DIR": str(tmp_path),
                              "AQUACIS_LOG_LEVEL": "info"})
    env = dict(line.split("=", 1) for line in res.stdout.splitlines() if line.startswith("AQUACIS_"))
    assert env["AQUACIS_DB_URL"] == "postgresql://u:p$(touch pwned)`touch pwned2`@h/db"
    assert "AQUACIS_SMTP_PASSWORD" not in env and env["AQUACIS_LOG_LEVEL"] == "info"
    assert env["AQUACIS_CFDI_CSD_CER"] == str(tmp_path / "csd.cer")
    assert not list(tmp_path.glob("pwned*")) and "not a setting name" in res.stderr
    # Every entry script loads the secrets before it runs aquacis.
    for script_path in (ROOT / "docker").glob("*-entrypoint.sh"):
        text = script_path.read_text()
        assert ". /app/docker/secrets.sh" in text and text.index("secrets.sh") < text.index("exec aquacis")


def _mosquitto_conf() -> dict[str, str]:
    conf: dict[str, str] = {}
    for line in (ROOT / "docker" / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            conf.setdefault(key, value.strip())
    return conf


def test_mosquitto_persists_queues_everything_and_admits_no_anonymous() -> None:
    conf = _mosquitto_conf()
    assert conf["allow_anonymous"] == "false"
    assert conf["persistence"] == "true"
    assert conf["max_queued_messages"] == "0"  # docs/gateway.md "Broker configuration"
    assert "persistent_client_expiration" not in conf
    assert conf["password_file"] and conf["acl_file"]
    services = _compose()["services"]
    broker = services["mosquitto"]
    mounts = dict(v.split(":")[:2][::-1] for v in broker["volumes"])
    store = conf["persistence_location"].rstrip("/")
    assert store in mounts and mounts[store] in _compose()["volumes"], "the persistence store is not on a volume"
    auth_dir = str(Path(conf["password_file"]).parent)
    assert mounts[auth_dir] in _compose()["volumes"]
    assert _depends(broker) == {"mosquitto-auth": "service_completed_successfully"}
    # The password file is made from the MQTT users' secrets by the one-shot service.
    auth = services["mosquitto-auth"]
    script = (ROOT / "docker" / "mosquitto" / "make-passwd.sh").read_text()
    for user in ("gateway", "lns", "health"):
        assert f"mqtt_{user}_password" in auth["secrets"] and user in script


def test_the_acl_lets_the_gateway_read_exactly_its_topics() -> None:
    from gateway.mqtt_client import DEFAULT_TOPICS

    rules: dict[str, set[tuple[str, str]]] = {}
    user = ""
    for line in (ROOT / "docker" / "mosquitto" / "acl").read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] == ["user"]:
            user = words[1]
        elif words[:1] == ["topic"]:
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            rules.setdefault(user, set()).add((access, topic))
    assert "" not in rules, "a rule outside any user applies to anonymous clients"
    assert rules["gateway"] == {("read", t) for t in DEFAULT_TOPICS}
    assert all(access == "write" for access, _ in rules["lns"])
    assert not any(topic in ("#", "+/#") for r in rules.values() for _, topic in r)


def _dockerfile(name: str) -> str:
    return (ROOT / "docker" / name).read_text()


def test_images_are_slim_and_share_the_user_that_owns_the_credentials() -> None:
    uids = set()
    for name in ("Dockerfile.cloud", "Dockerfile.gateway"):
        text = _dockerfile(name)
        installs = re.findall(r"pip install (?:-r )?(\S+)", text)
        assert "requirements-runtime.lock" in installs and "requirements.lock" not in installs, name
        steps = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert "[dev]" not in steps and "pytest" not in steps and "COPY . ." not in steps, name
        assert re.search(r"^USER aquacis$", text, re.M), name
        uid = re.search(r"useradd [^\n]*--uid (\d+)", text)
        assert uid, f"{name}: a fixed uid keeps the shared volume's owner the same in both images"
        uids.add(uid.group(1))
        assert re.search(r"install -d -o aquacis[^\n]*/var/lib/aquacis/credentials", text), name
        # The wheel is built from exactly the packages setup.py ships: a new top-level package
        # left out of the COPY list would be missing from the image.
        top = yaml.safe_load(re.search(r"^TOP = (\[.*\])$", (ROOT / "setup.py").read_text(), re.M).group(1))
        copied = set(re.findall(r"^COPY (\S+) \1$", text, re.M))
        assert set(top) | {"firmware-sim"} <= copied, (name, set(top) | {"firmware-sim"} - copied)
    assert len(uids) == 1
    # The enrol step writes the credential into a volume the gateway mounts, at the path its
    # entry script reads.
    services = _compose()["services"]
    cred_path = services["enrol"]["command"][services["enrol"]["command"].index("--credential-file") + 1]
    assert any(v.endswith(":" + str(Path(cred_path).parent)) for v in services["enrol"]["volumes"])
    assert any(v.startswith("credentials:" + str(Path(cred_path).parent)) for v in services["gateway"]["volumes"])
    gw_env = (ROOT / "docker" / "env" / "gateway.env").read_text()
    assert f"AQUACIS_CREDENTIAL_FILE={cred_path}" in gw_env.splitlines()
    assert cred_path in (ROOT / "docker" / "gateway-entrypoint.sh").read_text()


def test_the_runtime_lock_is_the_run_time_closure_without_dev_tools() -> None:
    import tomllib

    sys_path_script = ROOT / "scripts" / "runtime_lock.py"
    import importlib.util

    spec = importlib.util.spec_from_file_location("runtime_lock", sys_path_script)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "requirements-runtime.lock").read_text() == mod.render(), (
        "requirements-runtime.lock is out of date: run scripts/runtime_lock.py")
    runtime = mod.pins(ROOT / "requirements-runtime.lock")
    full = mod.pins(ROOT / "requirements.lock")
    assert all(full[name] == version for name, version in runtime.items())
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    dev_names = {mod.canonical(re.split(r"[<>=\[ ]", d)[0]) for d in dev}
    for tool in ("pytest", "pytest-timeout", "hypothesis", "mypy", "ruff", "freezegun", "aiosmtpd"):
        assert tool in dev_names and tool not in runtime, tool
    # Every declared run-time dependency is in it.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for d in deps:
        assert mod.canonical(re.split(r"[<>=\[ ;]", d)[0]) in runtime, d


def test_seed_and_enrol_are_idempotent_one_shots() -> None:
    services = _compose()["services"]
    assert _one_shot(services["seed"]) and _one_shot(services["enrol"])
    assert "--credential-file" in services["enrol"]["command"]
    # (the commands' idempotence itself: tests/cloud/test_deploy_idempotent.py)


def test_the_gateway_entry_takes_the_token_from_the_enrolled_credential(tmp_path: Path) -> None:
    import subprocess
    import sys

    docker = tmp_path / "docker"
    docker.mkdir()
    for name in ("secrets.sh", "gateway-entrypoint.sh"):
        text = (ROOT / "docker" / name).read_text().replace("/app/docker", str(docker))
        (docker / name).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Stand-ins for the image's `aquacis` (prints what it was given) and `python`.
    (bin_dir / "aquacis").write_text('#!/bin/sh\necho "argv: $*"\necho "token: $AQUACIS_NODE_TOKEN"\n')
    (bin_dir / "aquacis").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    cred = tmp_path / "gateway.json"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "AQUACIS_SECRETS_DIR": str(secrets),
           "AQUACIS_CREDENTIAL_FILE": str(cred)}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(docker / "gateway-entrypoint.sh"), "run", "--listen", "0.0.0.0:8100"],
                              env=env, capture_output=True, text=True, timeout=30)

    cred.write_text('{"token": "aq_from_enrol", "site_id": "s1"}')
    ok = run()
    assert ok.returncode == 0 and ok.stdout.splitlines() == ["argv: gateway run --listen 0.0.0.0:8100",
                                                             "token: aq_from_enrol"]
    for damaged in ("{half", "[]", '{"site_id": "s1"}'):
        cred.write_text(damaged)
        bad = run()
        assert bad.returncode != 0 and "argv:" not in bad.stdout
        assert "holds no node credential" in bad.stderr and "Traceback" not in bad.stderr


def _envvars_read_by_the_cli() -> set[str]:
    found: set[str] = set()

    def walk(cmd: Any) -> None:
        for p in getattr(cmd, "params", []):
            env = getattr(p, "envvar", None)
            found.update([env] if isinstance(env, str) else list(env or []))
        if _is_group(cmd):
            for name in cmd.list_commands(cmd.context_class(cmd)):
                walk(cmd.get_command(cmd.context_class(cmd), name))

    walk(typer.main.get_command(app))
    return found


def test_every_setting_the_stack_passes_is_read_by_something() -> None:
    from cloud.cfdi.settings import CfdiSettings
    from cloud.settings import CloudSettings

    known = _envvars_read_by_the_cli()
    for model in (CloudSettings, CfdiSettings):
        known |= {f"AQUACIS_{name.upper()}" for name in model.model_fields}
    entry_scripts = "".join(p.read_text() for p in (ROOT / "docker").glob("*.sh"))
    passed: dict[str, str] = {}
    for env_file in (ROOT / "docker" / "env").glob("*.env"):
        for line in env_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                passed[line.split("=", 1)[0]] = env_file.name
    for name, service in _compose()["services"].items():
        for s in service.get("secrets", []):
            target = s["target"] if isinstance(s, dict) else s
            if target.startswith("AQUACIS_"):
                passed[target] = f"secret of {name}"
    assert len(passed) >= 20
    for var, where in passed.items():
        assert var in known or var in entry_scripts, f"{var} ({where}) is read by no command, setting or entry script"
