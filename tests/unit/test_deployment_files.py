"""The Dockerfile and deploy/compose.yaml, read as the tools would read them.

This machine has no Docker engine, so neither file is built or run here;
these tests keep them true to the code: every file they copy exists, every
KEEL_* variable they set is a setting, every command is one the CLI knows,
and the image runs as a user other than root.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from entrypoints.cli import _parser
from entrypoints.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {PREFIX + name.upper() for name in Settings.__struct_fields__}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = (line.strip() for line in joined.splitlines())
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def dockerfile() -> list[list[tuple[str, str]]]:
    return _stages(_instructions((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _keel_argv(argv: list[str]) -> None:
    """Fail unless `keel <argv>` parses (argparse exits on an unknown command)."""
    _parser().parse_args(argv)


def test_the_image_is_multi_stage_and_runs_as_an_unprivileged_user(dockerfile) -> None:
    assert len(dockerfile) >= 2
    final = dockerfile[-1]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage must set USER"
    assert users[-1] not in {"root", "0", "0:0"}
    # Only the build stage installs compilers' output; the final stage copies it.
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final)


def test_the_image_uses_a_python_the_project_supports(dockerfile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floor = tuple(int(p) for p in project["requires-python"].removeprefix(">=").split("."))
    for stage in dockerfile:
        image = stage[0][1].split()[0]
        version = re.match(r"python:(\d+)\.(\d+)", image)
        assert version, f"{image} is not a python image"
        assert tuple(int(p) for p in version.groups()) >= floor


def test_every_copied_path_exists_and_is_not_ignored(dockerfile) -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".keel"} <= ignored
    for stage in dockerfile:
        for word, args in stage:
            if word != "COPY" or "--from=" in args:
                continue
            sources = [part for part in shlex.split(args) if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert source not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_the_image_runs_the_keel_cli_with_the_api_by_default(dockerfile) -> None:
    final = dict(dockerfile[-1])
    entrypoint, command = json.loads(final["ENTRYPOINT"]), json.loads(final["CMD"])
    assert entrypoint == ["python", "-m", "entrypoints.cli"]
    _keel_argv(command)
    assert command == ["api"]
    env = final["ENV"]
    assert "KEEL_HOST=0.0.0.0" in env, "inside a container the API must listen beyond loopback"
    # Migrations live beside the code: alembic.ini and the versions must be in the image.
    copied = " ".join(args for word, args in dockerfile[-1] if word == "COPY")
    assert "alembic.ini" in copied
    assert "alembic" in copied.replace("alembic.ini", "")


def test_compose_runs_migrations_then_the_api_and_workers(compose) -> None:
    services = compose["services"]
    assert isinstance(services, dict)
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    for name in ("api", "worker"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        _keel_argv(service["command"])
    assert services["api"]["command"] == ["api"]
    assert services["worker"]["command"][0] == "worker"
    migrate = " ".join(services["migrate"]["command"])
    for step in re.split(r"\s*&&\s*", migrate):
        argv = shlex.split(step)
        assert argv[:3] == ["python", "-m", "entrypoints.cli"], step
        _keel_argv(argv[3:])


def test_compose_sets_only_real_settings_and_no_secret(compose) -> None:
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if variable.startswith(PREFIX) and not variable.endswith("_PASSWORD"):
                assert variable in SETTINGS, f"{name}: {variable} is not a Keel setting"
            secret = any(word in variable for word in ("SECRET", "PASSWORD"))
            if secret:
                assert str(value).startswith("${"), f"{name}: {variable} is written in the file"


def test_the_queue_redis_never_evicts_and_keeps_its_data(compose) -> None:
    command = compose["services"]["redis"]["command"]
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert flags["--maxmemory-policy"] == "noeviction", "BullMQ needs noeviction"
    assert flags["--appendonly"] == "yes"
