"""entrypoints/settings.py: KEEL_* variables into frozen, validated settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrypoints.settings import ConfigError, Settings, load_settings

GOOD_SECRET = "s" * 32


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.migration_database_url is None
    assert settings.redis_url is None
    assert settings.jwt_secret is None
    assert settings.jwt_audience == "authenticated"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.data_dir == ".keel"
    assert settings.db_pool_size == 10
    assert settings.db_statement_cache is True
    assert settings.max_body_bytes == 1024 * 1024


def test_values_are_read_and_converted_from_strings() -> None:
    settings = load_settings(
        {
            "KEEL_DATABASE_URL": "postgresql://app@db/keel",
            "KEEL_REDIS_URL": "redis://cache:6379/0",
            "KEEL_JWT_SECRET": GOOD_SECRET,
            "KEEL_JWT_AUDIENCE": "api",
            "KEEL_HOST": "192.0.2.10",
            "KEEL_PORT": "9000",
            "KEEL_DB_POOL_SIZE": "25",
            "KEEL_DB_STATEMENT_CACHE": "false",
            "KEEL_MAX_BODY_BYTES": "2048",
        }
    )
    assert settings.database_url == "postgresql://app@db/keel"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.jwt_secret == GOOD_SECRET
    assert settings.jwt_audience == "api"
    assert settings.host == "192.0.2.10"
    assert settings.port == 9000
    assert settings.db_pool_size == 25
    assert settings.db_statement_cache is False
    assert settings.max_body_bytes == 2048


def test_variables_without_the_prefix_are_ignored() -> None:
    assert load_settings({"PORT": "9000", "keel_port": "9001"}).port == 8000


def test_an_empty_variable_counts_as_unset() -> None:
    settings = load_settings({"KEEL_PORT": "", "KEEL_JWT_SECRET": "", "KEEL_HOST": ""})
    assert settings.port == 8000
    assert settings.jwt_secret is None
    assert settings.host == "127.0.0.1"


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"KEEL_PORT": "9000", "KEEL_HOST": "10.0.0.1"}, port=9100)
    assert settings.port == 9100
    assert settings.host == "10.0.0.1"


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({}, port=0)
    assert raised.value.problems == ["KEEL_PORT=0: Expected `int` >= 1"]


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [name for name in os.environ if name.startswith("KEEL_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("KEEL_PORT", "8123")
    assert load_settings().port == 8123
    assert load_settings({}).port == 8000


def test_every_bad_value_is_reported_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {"KEEL_PORT": "http", "KEEL_JWT_SECRET": "too-short", "KEEL_DB_POOL_SIZE": "ten"}
        )
    problems = raised.value.problems
    assert len(problems) == 3
    assert str(raised.value).splitlines() == problems
    by_variable = {problem.split("=", 1)[0]: problem for problem in problems}
    assert set(by_variable) == {"KEEL_PORT", "KEEL_JWT_SECRET", "KEEL_DB_POOL_SIZE"}
    assert by_variable["KEEL_PORT"] == "KEEL_PORT=http: Expected `int`, got `str`"
    assert by_variable["KEEL_DB_POOL_SIZE"] == "KEEL_DB_POOL_SIZE=ten: Expected `int`, got `str`"
    assert "length >= 32" in by_variable["KEEL_JWT_SECRET"]


def test_good_values_alongside_bad_ones_are_not_reported() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"KEEL_PORT": "9000", "KEEL_DB_POOL_SIZE": "0", "KEEL_HOST": "::"})
    assert raised.value.problems == ["KEEL_DB_POOL_SIZE=0: Expected `int` >= 1"]


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("KEEL_PORT", "0", ">= 1"),
        ("KEEL_PORT", "65536", "<= 65535"),
        ("KEEL_PORT", "80.5", "Expected `int`"),
        ("KEEL_DB_POOL_SIZE", "0", ">= 1"),
        ("KEEL_DB_POOL_SIZE", "201", "<= 200"),
        ("KEEL_MAX_BODY_BYTES", "1023", ">= 1024"),
        ("KEEL_DB_STATEMENT_CACHE", "maybe", "Expected `bool`"),
        ("KEEL_DB_POOLER", "session", "expected none, or transaction"),
        ("KEEL_JWT_LEEWAY_S", "-1", ">= 0"),
        ("KEEL_JWT_LEEWAY_S", "301", "<= 300"),
        ("KEEL_JWT_JWKS_REFRESH_S", "0", ">= 1"),
    ],
)
def test_each_bad_value_is_one_problem(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value})
    [problem] = raised.value.problems
    assert problem.startswith(f"{variable}={value}: ")
    assert reason in problem


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEEL_PORT", "1"),
        ("KEEL_PORT", "65535"),
        ("KEEL_DB_POOL_SIZE", "200"),
        ("KEEL_MAX_BODY_BYTES", "1024"),
        ("KEEL_JWT_LEEWAY_S", "0"),
        ("KEEL_JWT_LEEWAY_S", "300"),
        ("KEEL_JWT_JWKS_REFRESH_S", "86400"),
    ],
)
def test_bounds_are_inclusive(variable: str, value: str) -> None:
    settings = load_settings({variable: value})
    assert getattr(settings, variable.removeprefix("KEEL_").lower()) == int(value)


def test_a_short_secret_is_rejected_without_being_echoed() -> None:
    secret = "hunter2-" + "x" * 23  # 31 characters
    with pytest.raises(ConfigError) as raised:
        load_settings({"KEEL_JWT_SECRET": secret})
    assert str(raised.value) == "KEEL_JWT_SECRET=<hidden>: Expected `str` of length >= 32"
    assert "hunter2" not in repr(raised.value.problems)


def test_a_secret_of_the_minimum_length_is_accepted() -> None:
    assert load_settings({"KEEL_JWT_SECRET": GOOD_SECRET}).jwt_secret == GOOD_SECRET


@pytest.mark.parametrize("name", ["database_url", "migration_database_url", "redis_url"])
def test_a_bad_url_is_not_echoed(name: str) -> None:
    # Any string is a valid URL setting, so only a non-string override can fail.
    bad = 5432123
    with pytest.raises(ConfigError) as raised:
        load_settings({}, **{name: bad})
    [problem] = raised.value.problems
    assert problem.startswith(f"KEEL_{name.upper()}=<hidden>: ")
    assert str(bad) not in problem


def test_values_that_are_not_secret_are_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"KEEL_HOST": "h", "KEEL_PORT": "eighty"})
    assert raised.value.problems == ["KEEL_PORT=eighty: Expected `int`, got `str`"]


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_data_path_expands_the_home_directory() -> None:
    settings = load_settings({"KEEL_DATA_DIR": "~/keel-data"})
    assert settings.data_path == Path.home() / "keel-data"
    assert load_settings({}).data_path == Path(".keel")


def test_require_passes_when_everything_named_is_set() -> None:
    settings = Settings(database_url="postgresql://db/keel", jwt_secret=GOOD_SECRET)
    settings.require("database_url", "jwt_secret")  # raises if it finds one missing


def test_require_names_every_missing_setting_on_its_own_line() -> None:
    settings = Settings(database_url="postgresql://db/keel")
    with pytest.raises(ConfigError) as raised:
        settings.require("database_url", "redis_url", "jwt_secret")
    assert raised.value.problems == [
        "KEEL_REDIS_URL is required but not set",
        "KEEL_JWT_SECRET is required but not set",
    ]
    assert str(raised.value) == "\n".join(raised.value.problems)


def test_an_empty_variable_does_not_satisfy_require() -> None:
    settings = load_settings({"KEEL_REDIS_URL": ""})
    with pytest.raises(ConfigError, match="KEEL_REDIS_URL is required"):
        settings.require("redis_url")


def test_a_transaction_pooler_turns_the_statement_cache_and_listen_off() -> None:
    direct = load_settings({"KEEL_DATABASE_URL": "postgresql://app@db/keel"})
    assert direct.statement_cache
    assert direct.listen_url == "postgresql://app@db/keel"
    pooled = load_settings(
        {"KEEL_DATABASE_URL": "postgresql://app@bouncer/keel", "KEEL_DB_POOLER": "transaction"}
    )
    assert not pooled.statement_cache
    assert pooled.listen_url is None
    listening = load_settings(
        {
            "KEEL_DATABASE_URL": "postgresql://app@bouncer/keel",
            "KEEL_DB_POOLER": "transaction",
            "KEEL_DATABASE_LISTEN_URL": "postgresql://app@db/keel",
        }
    )
    assert listening.listen_url == "postgresql://app@db/keel"


def test_the_statement_cache_can_be_off_without_a_pooler() -> None:
    settings = load_settings({"KEEL_DB_STATEMENT_CACHE": "false"})
    assert not settings.statement_cache
    assert not settings.pooled
