"""Tokens that break one claim or header rule each, and tokens that keep them
all (entrypoints/http/claims.py, tokens.py), shared by the claim tests and
the fast-path agreement test. Each case is built for a given user and email,
signed with the test secret unless it says otherwise."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from tests.conftest import AUDIENCE, JWT_SECRET

Case = Callable[[uuid.UUID, str], dict[str, str]]


def claims(user: uuid.UUID, email: str | None, /, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    found: dict[str, Any] = {
        "sub": str(user),
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=10),
        "role": "authenticated",
        "email": email,
    }
    found.update(changes)
    # A time is given as a function, called now: the cases are built at import.
    return {
        key: value() if callable(value) else value
        for key, value in found.items()
        if value is not ...
    }


def signed(payload: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_claims(**changes: Any) -> Case:
    return lambda user, email: bearer(signed(claims(user, email, **changes)))


def with_header(**headers: Any) -> Case:
    return lambda user, email: bearer(signed(claims(user, email), headers))


def unsigned(user: uuid.UUID, email: str) -> dict[str, str]:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return bearer(f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(user, email))}.")


def other_algorithm(algorithm: str) -> Case:
    return lambda user, email: bearer(
        jwt.encode(claims(user, email), JWT_SECRET, algorithm=algorithm)
    )


def scheme(spell: Callable[[str], str]) -> Case:
    return lambda user, email: {"Authorization": spell(signed(claims(user, email)))}


def _seconds(delta: float) -> Callable[[], datetime]:
    """`delta` seconds from the moment the token is made."""
    return lambda: datetime.now(UTC) + timedelta(seconds=delta)


LEEWAY_S = 30  # KEEL_JWT_LEEWAY_S's default, which the test app keeps
NIL, MAX = "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"
BIG = "x" * 9000

GOOD: dict[str, Case] = {
    "supabase shaped": with_claims(),
    "no iat": with_claims(iat=...),
    "iat ahead within the leeway": with_claims(iat=_seconds(LEEWAY_S - 10)),
    "nbf ahead within the leeway": with_claims(nbf=_seconds(LEEWAY_S - 10)),
    "expired within the leeway": with_claims(exp=_seconds(-(LEEWAY_S - 10))),
    "no role": with_claims(role=...),
    "not anonymous": with_claims(is_anonymous=False),
    "lower-case scheme": scheme(lambda token: f"bearer {token}"),
    "upper-case scheme": scheme(lambda token: f"BEARER {token}"),
    "a kid on an HS256 token": with_header(kid="legacy"),
}

# Each a 401 (the token or its sending is invalid)...
INVALID: dict[str, Case] = {
    "sub upper case": lambda user, email: bearer(
        signed(claims(user, email, sub=str(user).upper()))
    ),
    "sub urn": lambda user, email: bearer(signed(claims(user, email, sub=f"urn:uuid:{user}"))),
    "sub braces": lambda user, email: bearer(
        signed(claims(user, email, sub="{" + str(user) + "}"))
    ),
    "sub bare hex": lambda user, email: bearer(signed(claims(user, email, sub=user.hex))),
    "sub leading space": lambda user, email: bearer(signed(claims(user, email, sub=f" {user}"))),
    "sub trailing newline": lambda user, email: bearer(
        signed(claims(user, email, sub=f"{user}\n"))
    ),
    "sub nil": with_claims(sub=NIL),
    "sub max": with_claims(sub=MAX),
    "sub not a uuid": with_claims(sub="admin"),
    "sub a number": with_claims(sub=42),
    "sub missing": with_claims(sub=...),
    "no exp": with_claims(exp=...),
    "expired past the leeway": with_claims(exp=_seconds(-(LEEWAY_S + 30))),
    "exp as text": with_claims(exp="9999999999"),
    "iat past the leeway": with_claims(iat=_seconds(LEEWAY_S + 60)),
    "iat as text": with_claims(iat="1700000000"),
    "nbf past the leeway": with_claims(nbf=_seconds(LEEWAY_S + 60)),
    "email with NUL": with_claims(email="a\x00b@example.test"),
    "email of 100 kB": with_claims(email="a" * 100_000 + "@example.test"),
    "email of 255 characters": with_claims(email="a" * 64 + "@" + "b" * 185 + ".test"),
    "email with a newline": with_claims(email="a@example.test\nBcc: b@example.test"),
    "email with a space": with_claims(email="a b@example.test"),
    "email with a right-to-left override": with_claims(email="a\u202eb@example.test"),
    "email with a lone surrogate": with_claims(email="a\ud800@example.test"),
    "email without @": with_claims(email="example.test"),
    "email with two @": with_claims(email="a@b@example.test"),
    "email a number": with_claims(email=42),
    "email a list": with_claims(email=["a@example.test"]),
    "is_anonymous as text": with_claims(is_anonymous="true"),
    "header crit": with_header(crit=["exp"]),
    "header jku": with_header(jku="https://attacker.example/jwks.json"),
    "header jwk": with_header(jwk={"kty": "oct", "k": "c2VjcmV0"}),
    "header x5u": with_header(x5u="https://attacker.example/cert.pem"),
    "header x5c": with_header(x5c=["MIIB"]),
    "alg none": unsigned,
    "alg HS384, same secret": other_algorithm("HS384"),
    "alg HS512, same secret": other_algorithm("HS512"),
    "token over 8 KiB": with_claims(padding=BIG),
    "scheme Token": scheme(lambda token: f"Token {token}"),
    "scheme JWT": scheme(lambda token: f"JWT {token}"),
    "scheme Basic": scheme(lambda token: f"Basic {token}"),
    "no scheme": scheme(lambda token: token),
    "scheme with a colon": scheme(lambda token: f"Bearer: {token}"),
    "scheme and a tab": scheme(lambda token: f"Bearer\t{token}"),
    "two tokens in one header": scheme(lambda token: f"Bearer {token}, Bearer {token}"),
    "scheme only": scheme(lambda token: "Bearer"),
}

# ...and each a 403: a valid token, not a signed-in user's.
NOT_A_USER: dict[str, Case] = {
    "role anon": with_claims(role="anon"),
    "role service_role": with_claims(role="service_role"),
    "role supabase_admin": with_claims(role="supabase_admin"),
    "role Authenticated": with_claims(role="Authenticated"),
    "role empty": with_claims(role=""),
    "role null": with_claims(role=None),
    "role a list": with_claims(role=["authenticated"]),
    "anonymous sign-in": with_claims(is_anonymous=True),
}
