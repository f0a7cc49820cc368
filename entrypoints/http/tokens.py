"""Bearer tokens: from an `Authorization` header to a verified Identity.

One function for each step, shared by the JWT middleware and the cached-read
fast path, so both apply the very same rules:

- `credentials(values)`: exactly one `Authorization` header whose value is
  the `Bearer` scheme (any case, RFC 9110), one or more spaces, and a
  token68 of at most 8 KiB (RFC 6750); `Token`, `JWT`, a bare token or two
  headers are refused.
- `TokenVerifier.verify(token)`: the JOSE header has no `crit`, `jku`,
  `jwk`, `x5u` or `x5c` (Keel trusts no key or extension a token brings);
  its `alg` is on the allow-list (HS256 with KEEL_JWT_SECRET, ES256 and
  RS256 with KEEL_JWT_JWKS_URL, the key chosen by `kid`); PyJWT checks the
  signature, `aud`, `iss` when KEEL_JWT_ISSUER is set, and `exp`, `nbf`
  and `iat` with KEEL_JWT_LEEWAY_S of leeway; then entrypoints/http/claims.py.

A refusal is a NotAuthorizedException (401) or PermissionDeniedException
(403) whose `WWW-Authenticate` says why (RFC 6750 §3). Successful checks are
remembered (a client sends the same token until it expires; verifying it
each time was a fifth of a cached read's CPU): the whole token is the key,
so a changed byte is verified afresh; expiry is checked on every use; a new
key set forgets them all; failures are never remembered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import jwt
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
)

from entrypoints.http.claims import ClaimError, Identity, NotAUserError, identity_of
from entrypoints.http.jwks import ALGORITHMS, KeySet, KeysUnavailableError

SYMMETRIC = "HS256"
MAX_TOKEN_BYTES = 8 * 1024
FORBIDDEN_HEADERS = frozenset({"crit", "jku", "jwk", "x5u", "x5c"})
_CREDENTIALS = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*)")
_SCHEME = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr](?: |$)")
_OWS = " \t"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}  # no credentials: no error code (RFC 6750 §3.1)


def refused(description: str) -> NotAuthorizedException:
    """A 401 for a token that was sent but is not acceptable (RFC 6750 `invalid_token`)."""
    return NotAuthorizedException(
        description,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


def credentials(values: Sequence[str]) -> str:
    """The token of the request's one `Authorization: Bearer` header; raises 401."""
    if not values:
        raise NotAuthorizedException("a bearer token is required", headers=_CHALLENGE)
    if len(values) > 1:
        raise refused("send one Authorization header")
    value = values[0].strip(_OWS)
    if not _SCHEME.match(value):
        raise NotAuthorizedException("the Authorization scheme must be Bearer", headers=_CHALLENGE)
    if len(value) > MAX_TOKEN_BYTES + len("Bearer "):
        raise refused(f"the token is larger than {MAX_TOKEN_BYTES} bytes")
    found = _CREDENTIALS.fullmatch(value)
    if found is None:
        raise refused("the bearer token is malformed")
    return found[1]


class TokenVerifier:
    MAX_REMEMBERED = 10_000

    def __init__(
        self,
        *,
        audience: str,
        secret: str | None = None,
        keys: KeySet | None = None,
        issuer: str | None = None,
        leeway_s: float = 30,
    ) -> None:
        if secret is None and keys is None:
            raise ValueError("a token verifier needs a secret, a key set or both")
        self._audience, self._issuer, self._leeway_s = audience, issuer, leeway_s
        self._secret, self._keys = secret, keys
        self.algorithms = ({SYMMETRIC} if secret else set()) | (ALGORITHMS if keys else set())
        self._required = ["exp", "sub", "aud", *(["iss"] if issuer else [])]
        self._remembered: dict[str, Identity] = {}
        self._generation = 0

    async def warm(self) -> None:
        if self._keys is not None:
            await self._keys.warm()

    async def verify(self, token: str) -> Identity:
        """The identity a token proves; raises 401, 403 or 503 (keys unavailable)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise refused(f"the token is larger than {MAX_TOKEN_BYTES} bytes")
        generation = self._keys.generation if self._keys else 0
        if generation != self._generation:
            self._remembered.clear()
            self._generation = generation
        identity = self._remembered.get(token)
        if identity is not None and time.time() < identity.expires_at + self._leeway_s:
            return identity
        identity = await self._verify(token)
        if len(self._remembered) >= self.MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[token] = identity
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise refused("the token is not a JWT") from None
        if forbidden := sorted(FORBIDDEN_HEADERS & header.keys()):
            raise refused(f"the token header must not carry {', '.join(forbidden)}")
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            allowed = ", ".join(sorted(self.algorithms))
            raise refused(f"the token algorithm must be one of {allowed}")
        key = await self._key(algorithm, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": self._required},
            )
        except jwt.ExpiredSignatureError:
            raise refused("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise refused("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise refused("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise refused("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise refused("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise refused("the token's algorithm is not its key's") from None
        except jwt.MissingRequiredClaimError as error:
            raise refused(f"the token has no {error.claim} claim") from None
        except jwt.PyJWTError:
            raise refused("the token is invalid") from None
        try:
            return identity_of(claims)
        except ClaimError as error:
            raise refused(str(error)) from None
        except NotAUserError as error:
            raise PermissionDeniedException(
                str(error), headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
            ) from None

    async def _key(self, algorithm: str, kid: object) -> str | jwt.PyJWK:
        if algorithm == SYMMETRIC:
            assert self._secret is not None
            return self._secret
        assert self._keys is not None
        if not isinstance(kid, str):
            raise refused("the token header has no kid")
        try:
            key = await self._keys.key(kid)
        except KeysUnavailableError as error:
            raise ServiceUnavailableException(str(error), headers={"Retry-After": "5"}) from None
        if key is None:
            raise refused("the token is signed with an unknown key")
        return key
