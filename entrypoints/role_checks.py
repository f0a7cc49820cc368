"""Start-up checks of the runtime database role: `keel api` and `keel worker`
refuse to start, each problem in one sentence (the same `keel doctor` prints),
rather than serve with a role that could bypass row-level security, or retry
forever with one that cannot do a worker's job."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.database import RoleReport, inspect_runtime_role
from entrypoints.settings import ConfigError


class UnsafeDatabaseRoleError(ConfigError):
    """The runtime database role could bypass row-level security, or lacks a right it needs."""


def _refuse(report: RoleReport, problems: list[str]) -> None:
    if problems:
        raise UnsafeDatabaseRoleError(
            [
                f"KEEL_DATABASE_URL's role {report.name!r} {problem}; refusing to start"
                for problem in problems
            ]
        )


async def check_database_role(engine: AsyncEngine) -> None:
    """Raise UnsafeDatabaseRoleError unless the runtime role is bound by row-level security."""
    report = await inspect_runtime_role(engine)
    _refuse(report, report.problems())


async def check_worker_role(engine: AsyncEngine) -> None:
    """As check_database_role, and the role must be in keel_dispatcher (the outbox)."""
    report = await inspect_runtime_role(engine)
    problems = report.problems()
    if not report.member_of_dispatcher:
        problems.append(
            "is not in keel_dispatcher: enough for `keel api`, but `keel worker` needs"
            f" `keel db login-role {report.name} --worker`"
        )
    _refuse(report, problems)
