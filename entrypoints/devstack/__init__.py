"""Embedded PostgreSQL and Redis for `keel dev` and the tests (no Docker needed)."""
