"""`uvicorn entrypoints.http.asgi:app`: the API configured from KEEL_* variables."""

from entrypoints.http.app import create_app
from entrypoints.settings import load_settings

app = create_app(load_settings())
