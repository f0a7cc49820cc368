"""Webhook delivery over HTTP: Standard Webhooks signatures, and connections
that go only where domain/webhooks.py allows."""
