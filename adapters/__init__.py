"""Adapters: the ports implemented over Postgres, Redis and model providers."""
