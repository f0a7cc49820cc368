"""A token issuer for tests: ES256/RS256 signing keys, Supabase-shaped claims,
and a JWKS endpoint served by a local HTTP server that counts its reads."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import AUDIENCE

ISSUER = "https://project.supabase.example/auth/v1"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @classmethod
    def new(cls, algorithm: str) -> SigningKey:
        private = (
            ec.generate_private_key(ec.SECP256R1())
            if algorithm == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        return cls(uuid.uuid4().hex, algorithm, private)

    @property
    def jwk(self) -> dict[str, Any]:
        kind = ECAlgorithm if self.algorithm == "ES256" else RSAAlgorithm
        public: dict[str, Any] = kind.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **headers}
        )


def claims(user: uuid.UUID, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    found: dict[str, Any] = {
        "sub": str(user),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(minutes=10),
        "role": "authenticated",
        "email": f"{user.hex[:8]}@example.test",
    }
    found.update(changes)
    return {key: value for key, value in found.items() if value is not ...}


@dataclass
class Issuer:
    """The identity provider's JWKS endpoint: what it publishes, and how often it was read."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    url: str = ""

    def publish(self, *keys: SigningKey, extra: list[dict[str, Any]] | None = None) -> None:
        self.keys = [key.jwk for key in keys] + (extra or [])


@contextmanager
def serving_jwks() -> Iterator[Issuer]:
    """A local HTTP server publishing the issuer's JWKS."""
    published = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            published.reads += 1
            body = json.dumps({"keys": published.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    published.url = f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
    yield published
    server.shutdown()
    server.server_close()
