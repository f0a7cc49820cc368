"""The command line: `keel token` signs what the server accepts or refuses clearly; every
command explains its options and the variables it reads; mistakes are usage lines."""

from __future__ import annotations

import uuid
from pathlib import Path

import jwt
import pytest

from entrypoints.cli import COMMAND_SETTINGS, main
from entrypoints.settings import Settings

SUB = uuid.UUID("6f1c1d6e-1111-4111-8111-111111111111")


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("KEEL_JWT_SECRET", raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KEEL_DATA_DIR", str(data_dir))
    return data_dir


def _claims(token: str, secret: str) -> dict[str, object]:
    return jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated")


@pytest.mark.parametrize("data_dir_exists", [False, True])
def test_without_any_secret_it_refuses_and_creates_none(
    no_secret: Path, capsys: pytest.CaptureFixture[str], data_dir_exists: bool
) -> None:
    if data_dir_exists:
        no_secret.mkdir()
    assert main(["token", "--sub", str(SUB)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "KEEL_JWT_SECRET" in err
    assert "Traceback" not in err
    assert not (no_secret / "jwt-secret").exists()


def test_it_signs_with_the_secret_keel_dev_keeps(
    no_secret: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_secret.mkdir()
    (no_secret / "jwt-secret").write_text("kept-by-keel-dev-" + "k" * 40 + "\n")
    assert main(["token", "--sub", str(SUB), "--email", "a@example.test"]) == 0
    claims = _claims(capsys.readouterr().out.strip(), "kept-by-keel-dev-" + "k" * 40)
    assert (claims["sub"], claims["email"]) == (str(SUB), "a@example.test")


def test_the_configured_secret_wins_over_the_kept_one(
    no_secret: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_secret.mkdir()
    (no_secret / "jwt-secret").write_text("kept-by-keel-dev-" + "k" * 40)
    monkeypatch.setenv("KEEL_JWT_SECRET", "configured-" + "c" * 40)
    assert main(["token", "--sub", str(SUB)]) == 0
    assert _claims(capsys.readouterr().out.strip(), "configured-" + "c" * 40)["sub"] == str(SUB)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["dev"], []),
        (["api"], []),
        (["worker"], ["--concurrency"]),
        (["token"], ["--sub", "--email", "--ttl"]),
        (["db", "upgrade"], ["revision"]),
        (["db", "downgrade"], ["revision"]),
        (["db", "check"], []),
        (["db", "login-role"], ["name", "--password-env", "--worker"]),
        (["bench"], ["--agents", "--duration", "--api-processes", "--workers", "--out"]),
    ],
)
def test_every_command_explains_its_options_and_variables(
    command: list[str], options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    variables = COMMAND_SETTINGS[command[0]]
    assert variables
    for name in variables:
        assert f"KEEL_{name.upper()} " in out, name
    for option in options:
        assert option in out


def test_every_setting_is_listed_by_a_command() -> None:
    listed = {name for names in COMMAND_SETTINGS.values() for name in names}
    assert set(Settings.__struct_fields__) - listed == set()


def test_a_missing_argument_is_one_usage_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["db", "downgrade"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage: keel db downgrade" in err
    assert "Traceback" not in err
