"""docs/API.md, the HTTP contract, lists exactly the routes the OpenAPI
document describes (parameter names aside): a route added to one and not the
other fails here."""

from __future__ import annotations

import re
from pathlib import Path

from entrypoints.http.app import create_app
from entrypoints.settings import Settings

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "API.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ROW = re.compile(r"^\| ((?:GET|POST|PUT|PATCH|DELETE)[^|]*) \|", re.MULTILINE)
_METHOD = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\b")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}/]*\}", "{}", path)


def _contract_routes() -> set[tuple[str, str]]:
    routes = set()
    for cell in _ROW.findall(CONTRACT.read_text()):
        methods = _METHOD.findall(cell)
        for path in re.findall(r"(/[\w/{}.-]+)", re.sub(r"`[^`]*`", "", cell)):
            if path.startswith(("/v1", "/healthz", "/readyz", "/metrics", "/schema")):
                routes |= {(method, _shape(path)) for method in methods}
    return routes


def _openapi_routes() -> set[tuple[str, str]]:
    settings = Settings(
        database_url="postgresql://keel@localhost/keel",
        redis_url="redis://localhost",
        jwt_secret="contract-" + "c" * 40,
    )
    document = create_app(settings).openapi_schema.to_schema()
    routes = {
        (method.upper(), _shape(path))
        for path, operations in document["paths"].items()
        for method in operations
        if method.upper() in METHODS
    }
    # Served beside the document, not described in it.
    return routes | {("GET", "/schema/openapi.json"), ("GET", "/schema/swagger")}


def test_the_contract_and_the_openapi_document_list_the_same_routes() -> None:
    contract, served = _contract_routes(), _openapi_routes()
    assert sorted(served - contract) == [], "served but missing from docs/API.md"
    assert sorted(contract - served) == [], "in docs/API.md but not served"
