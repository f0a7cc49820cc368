"""`uvicorn entrypoints.http.asgi:app`: the API configured from KEEL_* variables."""

from entrypoints.http.app import create_app
from entrypoints.logging import configure_logging
from entrypoints.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level)
app = create_app(settings)
