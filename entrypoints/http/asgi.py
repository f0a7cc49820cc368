"""`uvicorn entrypoints.http.asgi:app --http entrypoints.http.asgi:Protocol`: the API
configured from KEEL_* variables, with the request-head bounds `keel api` has
(entrypoints/http/heads.py; without `--http` uvicorn reads heads unbounded)."""

from entrypoints.http.app import create_app
from entrypoints.http.heads import HeadLimits, bounded
from entrypoints.logging import configure_logging
from entrypoints.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level)
app = create_app(settings)
Protocol = bounded(HeadLimits.of(settings))
