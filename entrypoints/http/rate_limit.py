"""Per-user rate limit on task creation (the count itself: domain.ports.RateLimit).

It fails open: the limit protects other tenants' share of the workers, it is
not a security boundary, and a Redis outage must not refuse every new task
(the queue's own outbox keeps them safe meanwhile). A full Redis (out of
memory) lets them through too: tasks live in Postgres. Every answer that was
counted says where the caller stands (RateLimit-* headers); a refusal is a
RateLimitedError, answered 429 with Retry-After (errors.py).
"""

from __future__ import annotations

import logging
from uuid import UUID

from domain.errors import UnavailableError
from domain.ports import RateLimit

logger = logging.getLogger("keel.http")


async def count_task(limit: RateLimit, user_id: UUID) -> dict[str, str]:
    """Count one task creation of `user_id`: the headers for its answer."""
    try:
        quota = await limit.take(f"user:{user_id}")
    except UnavailableError as error:
        logger.warning("%s: letting the request through", error.detail)
        return {}
    return {
        "RateLimit-Limit": str(quota.limit),
        "RateLimit-Remaining": str(quota.remaining),
        "RateLimit-Reset": str(quota.reset_s),
    }
