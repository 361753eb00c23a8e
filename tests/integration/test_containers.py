"""docker-compose.yml and the Dockerfile, checked against the contracts without a Docker engine.

The compose file is parsed with PyYAML and its ``${VAR}`` references interpolated the way
Compose does; the resulting settings are fed to the real ``Settings`` and connection-string
parser, the emulator's settings.json to the real upstream loader, and the healthcheck
commands are run against real servers.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, parse_connection_string

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WEBHOOK_IN_COMPOSE = "http://app:7071/runtime/webhooks/signalr"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariableError(Exception):
    """A required ``${VAR:?message}`` variable is unset."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Apply Compose's variable substitution to every string in ``value``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op is None:
            return current or ""
        if op.endswith("-"):
            return arg if unset else str(current)
        if unset:
            raise MissingVariableError(f"{name}: {arg}")
        return str(current)

    return _VARIABLE.sub(substitute, value)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file with anchors resolved (YAML) and variables interpolated (Compose)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    result: dict[str, Any] = interpolate(raw, env)
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, whichever of the two Compose syntaxes it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    """A service's command as an argument list."""
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def option(args: list[str], name: str) -> str:
    """The value following ``name`` in an argument list."""
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def healthcheck_argv(service: Mapping[str, Any], port: int, default_port: int) -> list[str]:
    """The healthcheck as a runnable argv, aimed at ``port`` on this machine."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", "use the exec form: no shell in the slim image is needed"
    argv = [str(part).replace(str(default_port), str(port)) for part in test[1:]]
    assert argv[0] == "python", "the image has python, not curl or wget"
    return [sys.executable, *argv[1:]]


@pytest.fixture
def compose() -> dict[str, Any]:
    """The compose file as ``docker compose up`` would see it with GATEWAY_API_KEYS set."""
    return load_compose({"GATEWAY_API_KEYS": "key-1,key-2"})


def test_services_are_the_emulator_and_the_app(compose: dict[str, Any]) -> None:
    """The compose file runs exactly two services, `emulator` and `app`, built from this repo."""
    services = compose["services"]
    assert set(services) == {"emulator", "app"}
    for service in services.values():
        assert service["build"]["context"] == "."


def test_ports_are_the_contract_ports(compose: dict[str, Any]) -> None:
    """The app is reachable on 7071 and the emulator on 8888 (the browser talks to both)."""
    services = compose["services"]
    assert "7071:7071" in [str(port) for port in services["app"]["ports"]]
    assert "8888:8888" in [str(port) for port in services["emulator"]["ports"]]


def test_emulator_command_follows_the_cli_contract(compose: dict[str, Any]) -> None:
    """The emulator runs as `signalr-emulator --host 0.0.0.0 --port 8888 --config FILE`."""
    args = command(compose["services"]["emulator"])
    assert args[0] == "signalr-emulator"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["signalr-emulator"] == "emulator.__main__:main"
    assert option(args, "--host") == "0.0.0.0"
    assert option(args, "--port") == "8888"
    config = option(args, "--config")
    mounts = [str(v).split(":") for v in compose["services"]["emulator"].get("volumes", [])]
    sources = {target: source for source, target, *_ in mounts}
    assert config in sources, "the settings file is mounted so it can be edited without a build"
    assert (ROOT / sources[config]).resolve() == ROOT / "docker" / "emulator-settings.json"


def test_emulator_upstream_points_at_the_app_service() -> None:
    """docker/emulator-settings.json sends every event to the app's webhook by service name."""
    from emulator.upstream import load_upstream_settings

    templates = load_upstream_settings(ROOT / "docker" / "emulator-settings.json")
    assert templates
    first = next(t for t in templates if t.matches("chat", "messages", "broadcast"))
    assert first.url_for("chat", "messages", "broadcast") == WEBHOOK_IN_COMPOSE
    assert first.matches("anyhub", "connections", "connected")


def test_app_command_serves_the_asgi_app_on_7071(compose: dict[str, Any]) -> None:
    """The app runs `uvicorn app.main:app` on 0.0.0.0:7071, and that ASGI object exists."""
    args = command(compose["services"]["app"])
    assert args[:2] == ["uvicorn", "app.main:app"]
    assert option(args, "--host") == "0.0.0.0"
    assert option(args, "--port") == "7071"
    import app.main

    assert callable(app.main.app)


def test_app_connection_string_reaches_the_emulator(compose: dict[str, Any]) -> None:
    """The backend calls the emulator by service name, hands browsers localhost:8888, same key."""
    env = environment(compose["services"]["app"])
    endpoint = parse_connection_string(env["AzureSignalRConnectionString"])
    assert endpoint.server_endpoint == "http://emulator:8888"
    assert endpoint.client_url("Chat") == "http://localhost:8888/client/?hub=chat"
    emulator_key = environment(compose["services"]["emulator"])["EMULATOR_ACCESS_KEY"]
    assert endpoint.access_key == emulator_key == EMULATOR_ACCESS_KEY


def test_access_key_override_changes_both_services() -> None:
    """Setting EMULATOR_ACCESS_KEY gives the emulator and the app's connection string that key."""
    compose = load_compose({"GATEWAY_API_KEYS": "k", "EMULATOR_ACCESS_KEY": "another-key-0123"})
    app_env = environment(compose["services"]["app"])
    emulator_env = environment(compose["services"]["emulator"])
    endpoint = parse_connection_string(app_env["AzureSignalRConnectionString"])
    assert endpoint.access_key == emulator_env["EMULATOR_ACCESS_KEY"] == "another-key-0123"


@pytest.mark.anyio
async def test_emulator_accepts_the_tokens_the_app_hands_to_browsers(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token made for the app's endpoint (host `emulator`) is accepted via localhost."""
    import httpx

    from emulator.settings import EmulatorSettings
    from signalr_protocol.tokens import mint_client_token
    from tests.support.emulator import running_emulator

    for name, value in environment(compose["services"]["emulator"]).items():
        monkeypatch.setenv(name, value)
    configured = EmulatorSettings()
    endpoint = parse_connection_string(
        environment(compose["services"]["app"])["AzureSignalRConnectionString"]
    )
    token = mint_client_token(endpoint, "chat", user_id="alice")
    statuses = []
    for hosts in (configured.audience_hosts, []):  # as configured, then without the setting
        async with (
            running_emulator(access_key=configured.access_key, audience_hosts=hosts) as emu,
            httpx.AsyncClient(timeout=10) as client,
        ):
            answer = await client.post(
                f"http://127.0.0.1:{emu.port}/client/negotiate?hub=chat&negotiateVersion=1",
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append(answer.status_code)
    assert statuses == [200, 401]


def test_gateway_keys_are_required() -> None:
    """`docker compose up` refuses to start without GATEWAY_API_KEYS, saying how to set them."""
    with pytest.raises(MissingVariableError, match="GATEWAY_API_KEYS: set GATEWAY_API_KEYS"):
        load_compose({})


def test_app_environment_is_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's environment, read by the real Settings, names the emulator and the gateway keys."""
    for name, value in environment(compose["services"]["app"]).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert not settings.uses_emulator
    assert settings.endpoint.client_endpoint == "http://localhost:8888"
    assert settings.gateway_api_keys == ["key-1", "key-2"]
    assert settings.dev_user_header_enabled  # the sample page's user names work in the demo


def test_app_starts_after_a_healthy_emulator(compose: dict[str, Any]) -> None:
    """The app waits for the emulator's healthcheck, and both services have one."""
    services = compose["services"]
    assert services["app"]["depends_on"]["emulator"]["condition"] == "service_healthy"
    for service in services.values():
        check = service["healthcheck"]
        assert {"test", "interval", "timeout", "retries"} <= set(check)


@pytest.mark.anyio
async def test_app_healthcheck_passes_only_while_the_app_serves(compose: dict[str, Any]) -> None:
    """The app's healthcheck command succeeds against a running backend and fails once it stops."""
    from app.main import create_app
    from tests.support.servers import serve_asgi

    service = compose["services"]["app"]
    async with serve_asgi(create_app(Settings())) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        argv = healthcheck_argv(service, port, 7071)
        assert (await _run(argv)) == 0
    assert (await _run(argv)) != 0


@pytest.mark.anyio
async def test_emulator_healthcheck_passes_only_while_the_emulator_serves(
    compose: dict[str, Any],
) -> None:
    """The emulator's healthcheck command succeeds against a running emulator and fails after."""
    from tests.support.emulator import running_emulator

    service = compose["services"]["emulator"]
    async with running_emulator() as emu:
        argv = healthcheck_argv(service, emu.port, 8888)
        assert (await _run(argv)) == 0
    assert (await _run(argv)) != 0


async def _run(argv: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await process.wait()


# ---- Dockerfile ------------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage of the Dockerfile: its base, name and (INSTRUCTION, arguments)."""

    base: str
    name: str | None
    lines: list[tuple[str, str]]

    def instructions(self, name: str) -> list[str]:
        """The arguments of every ``name`` instruction of the stage."""
        return [args for instruction, args in self.lines if instruction == name]


def dockerfile_stages() -> list[Stage]:
    """The Dockerfile's stages in order, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        else:
            stages[-1].lines.append((instruction.upper(), args.strip()))
    return stages


def stage(name: str) -> Stage:
    """The stage called ``name``."""
    (found,) = [s for s in dockerfile_stages() if s.name == name]
    return found


def ancestry(target: Stage) -> list[Stage]:
    """``target`` and the stages it is built ``FROM``, nearest first."""
    chain = [target]
    names = {s.name: s for s in dockerfile_stages() if s.name}
    while chain[-1].base in names:
        chain.append(names[chain[-1].base])
    return chain


def image_instructions(target: Stage, name: str) -> list[str]:
    """The ``name`` instructions that apply to ``target``'s image, inherited ones first."""
    return [args for s in reversed(ancestry(target)) for args in s.instructions(name)]


def copied_from(target: Stage) -> set[str]:
    """The stages whose files ``target``'s image copies (``COPY --from=...``)."""
    return {
        args.split()[0].removeprefix("--from=")
        for s in ancestry(target)
        for args in s.instructions("COPY")
        if args.startswith("--from=")
    }


def healthcheck_command(target: Stage) -> list[str]:
    """The exec-form command of ``target``'s HEALTHCHECK."""
    (check,) = image_instructions(target, "HEALTHCHECK")
    return [str(part) for part in json.loads(check.split(" CMD ", 1)[1])]


def exec_form(args: str) -> list[str]:
    """A ``CMD`` in exec form as an argument list."""
    value = json.loads(args)
    assert isinstance(value, list), "use the exec form, so signals reach the server"
    return [str(part) for part in value]


def test_compose_builds_each_service_from_its_own_target(compose: dict[str, Any]) -> None:
    """`app` builds the default (last) stage `backend`, `emulator` the stage `emulator`."""
    stages = dockerfile_stages()
    targets = {name: service["build"]["target"] for name, service in compose["services"].items()}
    assert targets == {"app": "backend", "emulator": "emulator"}
    assert stages[-1].name == "backend", "docker build without --target gives the backend"
    assert stage("emulator")  # exists, exactly once
    images = {service["image"] for service in compose["services"].values()}
    assert len(images) == 2, "two images: tagging both with one name would overwrite one"


@pytest.mark.parametrize("target", ["backend", "emulator"])
def test_images_are_slim_python_311_with_the_installed_package(target: str) -> None:
    """Both images run on python:3.11-slim, with the venv where `pip install .` put the package."""
    image = stage(target)
    assert ancestry(image)[-1].base == "python:3.11-slim"
    sources = copied_from(image)
    assert sources, "the virtual environment is copied from a build stage"
    for source in sources - {"browser-client"}:
        installs = [run for s in ancestry(stage(source)) for run in s.instructions("RUN")]
        assert any("pip install ." in run for run in installs)


@pytest.mark.parametrize("target", ["backend", "emulator"])
def test_images_run_as_a_non_root_user(target: str) -> None:
    """Both images switch to a non-root user before their command."""
    users = image_instructions(stage(target), "USER")
    assert users, f"no USER instruction for {target}"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_backend_image_has_a_healthcheck_and_exposes_7071() -> None:
    """The backend image exposes 7071, probes /healthz on it and serves app.main:app."""
    backend = stage("backend")
    assert image_instructions(backend, "EXPOSE") == ["7071"]
    assert "http://127.0.0.1:7071/healthz" in " ".join(healthcheck_command(backend))
    command = exec_form(backend.instructions("CMD")[-1])
    assert command[:2] == ["uvicorn", "app.main:app"]


def test_emulator_image_runs_signalr_emulator_without_the_backend() -> None:
    """The emulator image runs `signalr-emulator` on 0.0.0.0:8888 from a venv without `app`."""
    emulator = stage("emulator")
    assert image_instructions(emulator, "EXPOSE") == ["8888"]
    command = exec_form(emulator.instructions("CMD")[-1])
    assert command[0] == "signalr-emulator"
    assert option(command, "--host") == "0.0.0.0"
    assert option(command, "--port") == "8888"
    (source,) = copied_from(emulator)
    removal = " ".join(stage(source).instructions("RUN"))
    assert "rmtree(app.__path__[0])" in removal, "the backend package is removed"
    assert removal.index("rmtree") < removal.index("signalr-emulator --help"), (
        "the build proves the emulator starts once the backend is gone"
    )
    copies = " ".join(emulator.instructions("COPY"))
    assert "web" not in copies.split() and "@microsoft/signalr" not in copies


@pytest.mark.anyio
async def test_emulator_image_healthcheck_passes_only_while_the_emulator_serves() -> None:
    """The emulator image's HEALTHCHECK succeeds against a running emulator and fails after."""
    from tests.support.emulator import running_emulator

    check = healthcheck_command(stage("emulator"))
    assert check[0] == "python"
    async with running_emulator() as emu:
        argv = [sys.executable, *(p.replace("8888", str(emu.port)) for p in check[1:])]
        assert (await _run(argv)) == 0
    assert (await _run(argv)) != 0


def test_image_serves_the_page_with_a_local_browser_bundle() -> None:
    """The backend image copies web/ and the npm browser bundle where the page router looks."""
    backend = stage("backend")
    workdir = image_instructions(backend, "WORKDIR")[-1]
    copies = backend.instructions("COPY")
    assert any(c.split()[-1] in {"./web", f"{workdir}/web"} for c in copies)
    bundle = [c for c in copies if "@microsoft/signalr/dist/browser" in c]
    assert bundle and bundle[0].split()[-1].rstrip("/") in {"./web/vendor", f"{workdir}/web/vendor"}
    assert (ROOT / "node_modules/@microsoft/signalr/dist/browser/signalr.min.js").is_file()
    from app.routers.web import vendor_file

    assert vendor_file("signalr.min.js", ROOT / "web") is not None


def test_build_stage_copies_every_package_of_the_wheel() -> None:
    """The build stage copies each package pyproject.toml puts in the wheel (the core included)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {args.split()[0] for args in stage("build").instructions("COPY")}
    assert set(packages) <= copied


def test_dockerfile_copies_only_what_the_context_keeps() -> None:
    """Every local COPY source exists and is not excluded by .dockerignore."""
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    }
    for each in dockerfile_stages():
        for args in each.instructions("COPY"):
            if args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"
