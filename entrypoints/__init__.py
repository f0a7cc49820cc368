"""Entrypoints: the HTTP app, the CLI and the dev stack; the composition root."""
