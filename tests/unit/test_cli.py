"""`keel token`: a token the configured server accepts, or a clear refusal, never a traceback."""

from __future__ import annotations

import uuid
from pathlib import Path

import jwt
import pytest

from entrypoints.cli import main

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
