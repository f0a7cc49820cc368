"""Postgres adapters: tables, the tenant-bound unit of work, repositories."""
