"""Alembic, driven from Python: `keel db …`, `keel dev` and the tests use it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None, *, log: bool = True) -> Config:
    """Alembic's config for this checkout; `url` (the schema owner's) overrides the env.

    `log` prints a line per migration on stderr (alembic.ini's loggers).
    """
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["log"] = log
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head", *, log: bool = True) -> None:
    command.upgrade(alembic_config(url, log=log), revision)


def downgrade(url: str | None, revision: str, *, log: bool = True) -> None:
    command.downgrade(alembic_config(url, log=log), revision)
