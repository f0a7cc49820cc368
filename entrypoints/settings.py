"""KEEL_* environment variables, validated at start-up into frozen settings.

Every bad value is reported, each with its own line, before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints

import msgspec
from msgspec import Meta

PREFIX = "KEEL_"
MIN_SECRET_BYTES = 32
# Comma-separated origins (scheme://host[:port], no path), or `*` for any.
_ORIGIN = r"\s*(?:\*|https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)\s*"
CORS_ORIGINS = rf"^(?:{_ORIGIN}(?:,{_ORIGIN})*)?$"


class ConfigError(Exception):
    """One or more KEEL_* variables are missing or invalid; `str()` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: Annotated[
        str | None,
        Meta(description="Runtime Postgres URL: a role that is not superuser, BYPASSRLS or owner"),
    ] = None
    migration_database_url: Annotated[
        str | None, Meta(description="Schema owner's Postgres URL, for `keel db` and alembic")
    ] = None
    redis_url: Annotated[str | None, Meta(description="redis:// or unix:// URL")] = None
    redis_cluster: Annotated[
        bool,
        Meta(description="KEEL_REDIS_URL is a seed node of a Redis Cluster (docs/deploying.md)"),
    ] = False
    jwt_secret: (
        Annotated[
            str,
            Meta(
                min_length=MIN_SECRET_BYTES, description="HS256 secret shared with the token issuer"
            ),
        ]
        | None
    ) = None
    jwt_audience: Annotated[str, Meta(min_length=1, description="Required `aud` claim")] = (
        "authenticated"
    )
    jwt_jwks_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^\S+$",
                description="The token issuer's JWKS (ES256/RS256 keys): an http(s) URL or a file",
            ),
        ]
        | None
    ) = None
    jwt_jwks_refresh_s: Annotated[
        float, Meta(ge=1, le=86_400, description="Re-read the JWKS this often (seconds)")
    ] = 300
    jwt_issuer: (
        Annotated[str, Meta(min_length=1, description="Required `iss` claim, when set")] | None
    ) = None
    jwt_leeway_s: Annotated[
        float, Meta(ge=0, le=300, description="Clock skew allowed on `exp`, `nbf` and `iat`")
    ] = 30
    host: Annotated[str, Meta(min_length=1, description="API listen address")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535, description="API listen port")] = 8000
    data_dir: Annotated[str, Meta(min_length=1, description="Embedded services' data")] = ".keel"
    db_pool_size: Annotated[int, Meta(ge=1, le=200, description="Connections per process")] = 10
    db_command_timeout_s: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="Longest wait for a statement's answer or a new connection; then 503",
        ),
    ] = 30.0
    db_statement_cache: Annotated[
        bool,
        Meta(description="Prepared-statement caches; false: none, and uniquely named statements"),
    ] = True
    db_pooler: Annotated[
        str,
        Meta(
            pattern="^(none|transaction)$",
            description="none, or transaction: KEEL_DATABASE_URL is a transaction-mode pooler",
        ),
    ] = "none"
    database_listen_url: Annotated[
        str | None,
        Meta(description="Direct Postgres URL for the worker's LISTEN, when pooled (else polls)"),
    ] = None
    cache: Annotated[
        bool, Meta(description="Serve cached reads from Redis; false reads Postgres every time")
    ] = True
    hot_reads: Annotated[
        bool,
        Meta(
            description="Answer cached foundation reads before the framework runs;"
            " false: every request takes the full path"
        ),
    ] = True
    cache_timeout_ms: Annotated[
        int,
        Meta(ge=1, le=5000, description="Redis timeout for cache reads before Postgres answers"),
    ] = 50
    cache_bytes_per_workspace: Annotated[
        int,
        Meta(ge=1024 * 1024, description="What one workspace may keep in the Redis cache"),
    ] = 4 * 1024 * 1024
    slow_query_ms: Annotated[
        int, Meta(ge=0, description="Log statements slower than this (normalised SQL, no values)")
    ] = 100
    log_level: Annotated[
        str,
        Meta(pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="DEBUG, INFO, WARNING or ERROR"),
    ] = "INFO"
    model_provider: Annotated[
        str, Meta(pattern="^(simulated|openai)$", description="simulated or openai")
    ] = "simulated"
    sim_token_delay_ms: Annotated[
        float, Meta(ge=0, le=10_000, description="Simulated model: delay per token")
    ] = 20
    sim_fail_rate: Annotated[
        float, Meta(ge=0, le=1, description="Simulated model: share of calls that fail")
    ] = 0
    openai_base_url: Annotated[
        str | None, Meta(description="OpenAI-compatible endpoint (openai provider)")
    ] = None
    openai_api_key: Annotated[str | None, Meta(description="Its API key")] = None
    openai_model: Annotated[str | None, Meta(description="Its model name")] = None
    queue_prefix: Annotated[
        str,
        Meta(
            pattern=r"^\{[a-z0-9_-]{1,40}\}$",
            description="BullMQ key prefix in braces (one Redis Cluster slot)",
        ),
    ] = "{keel}"
    task_rate_per_minute: Annotated[
        int, Meta(ge=1, le=100_000, description="Tasks one user may start per minute")
    ] = 120
    workspace_max_running: Annotated[
        int, Meta(ge=1, le=1000, description="Tasks of one workspace running at once")
    ] = 4
    task_lease_s: Annotated[
        float, Meta(ge=1, le=3600, description="A running task's lease, renewed by heartbeats")
    ] = 30
    task_redispatch_s: Annotated[
        float, Meta(ge=1, le=3600, description="A queued task not started by then is sent again")
    ] = 30
    retry_base_ms: Annotated[
        int, Meta(ge=1, description="First retry delay of a failed attempt")
    ] = 1000
    retry_cap_ms: Annotated[int, Meta(ge=1, description="Longest retry delay")] = 60_000
    webhook_allow_private: Annotated[
        bool,
        Meta(description="Let webhooks reach loopback and private addresses (development only)"),
    ] = False
    webhook_max_attempts: Annotated[
        int, Meta(ge=1, le=50, description="Attempts per webhook delivery before giving up")
    ] = 8
    webhook_timeout_s: Annotated[
        float, Meta(gt=0, le=60, description="Longest wait for a webhook receiver's answer")
    ] = 10
    webhook_lease_s: Annotated[
        float,
        Meta(ge=1, le=3600, description="A webhook attempt's lease; then another worker sends it"),
    ] = 60
    worker_fetching: Annotated[
        bool,
        Meta(
            description="Worker takes the next job while completing one (false: bullmq's"
            " plain worker, one more round trip per job)"
        ),
    ] = True
    worker_metrics_port: Annotated[
        int, Meta(ge=0, le=65535, description="Worker's Prometheus endpoint port; 0: none")
    ] = 0
    sse_heartbeat_s: Annotated[
        float, Meta(gt=0, le=15, description="Comment line on an idle event stream this often")
    ] = 15
    sse_streams_per_user: Annotated[
        int, Meta(ge=1, le=10_000, description="Open event streams per user, across processes")
    ] = 20
    sse_tickets_per_user: Annotated[
        int, Meta(ge=1, le=100_000, description="Unused stream tickets one user may hold")
    ] = 100
    sse_buffer_events: Annotated[
        int, Meta(ge=10, le=100_000, description="Events buffered per stream before it is closed")
    ] = 1000
    max_workspaces_per_user: Annotated[
        int, Meta(ge=1, le=1_000_000, description="Workspaces one user may own")
    ] = 50
    ui_state_entries_per_user: Annotated[
        int,
        Meta(ge=1, le=1_000_000, description="UI-state entries one user keeps, all workspaces"),
    ] = 5000
    ui_state_bytes_per_user: Annotated[
        int,
        Meta(
            ge=64 * 1024 + 1024,
            description="UI-state bytes one user keeps in Redis, all workspaces",
        ),
    ] = 8 * 1024 * 1024
    max_body_bytes: Annotated[int, Meta(ge=1024, description="Request body limit")] = 1024 * 1024
    tracing: Annotated[
        bool,
        Meta(description="Export OpenTelemetry traces (OTEL_* configure it; needs keel[tracing])"),
    ] = False
    max_head_bytes: Annotated[
        int, Meta(ge=1024, le=1024 * 1024, description="Request head limit (URL and fields)")
    ] = 16 * 1024
    max_header_fields: Annotated[
        int, Meta(ge=8, le=10_000, description="Header fields one request may have")
    ] = 100
    head_timeout_s: Annotated[
        float, Meta(gt=0, le=300, description="Time a client has to send a request head")
    ] = 10
    cors_origins: Annotated[
        str,
        Meta(
            pattern=CORS_ORIGINS,
            description=(
                "Origins allowed to call the API from a browser: "
                "scheme://host[:port], comma-separated, or *"
            ),
        ),
    ] = ""

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def pooled(self) -> bool:
        """KEEL_DATABASE_URL leads to a transaction-mode pooler (PgBouncer, Supavisor)."""
        return self.db_pooler == "transaction"

    @property
    def statement_cache(self) -> bool:
        """Whether prepared statements may be cached on a connection: not through a pooler."""
        return self.db_statement_cache and not self.pooled

    @property
    def listen_url(self) -> str | None:
        """Where the worker LISTENs for new tasks: never through a pooler; None: it polls."""
        if self.database_listen_url is not None:
            return self.database_listen_url
        return None if self.pooled else self.database_url

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every one of `names` that is unset."""
        missing = [
            f"{PREFIX}{name.upper()} is required but not set"
            for name in names
            if getattr(self, name) is None
        ]
        if missing:
            raise ConfigError(missing)


def describe(*names: str) -> str:
    """`KEEL_NAME  description (default …)` lines for a command's --help."""
    hints = get_type_hints(Settings, include_extras=True)
    defaults = Settings()
    lines = []
    for name in names:
        default = getattr(defaults, name)
        if isinstance(default, bool):
            default = str(default).lower()
        shown = "" if default in (None, "") else f" (default {default})"
        lines.append(f"  {PREFIX}{name.upper():<28} {_description(hints[name])}{shown}")
    return "\n".join(lines)


def _description(hint: Any) -> str:
    """The Meta description of `hint`, also inside `Annotated[...] | None`."""
    for arg in get_args(hint):
        if isinstance(arg, Meta) and arg.description:
            return arg.description
        if found := _description(arg):
            return found
    return ""


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read KEEL_* from `environ` (default: the process environment).

    Raises ConfigError listing every invalid value, one line each.
    """
    environ = os.environ if environ is None else environ
    hints = get_type_hints(Settings, include_extras=True)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name in Settings.__struct_fields__:
        variable = PREFIX + name.upper()
        raw = overrides[name] if name in overrides else environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            values[name] = msgspec.convert(raw, hints[name], strict=False)
        except msgspec.ValidationError as error:
            problems.append(f"{variable}={_shown(name, raw)}: {_explained(error, hints[name])}")
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


def _explained(error: msgspec.ValidationError, hint: Any) -> str:
    """msgspec's message, or for a pattern mismatch the field's own description
    (a regex says little to someone setting a variable)."""
    description = _description(hint)
    if "matching regex" in str(error) and description:
        return f"expected {description[0].lower()}{description[1:]}"
    return str(error)


def _shown(name: str, raw: object) -> object:
    hidden = ("secret", "url", "key")
    return "<hidden>" if any(word in name for word in hidden) else raw
