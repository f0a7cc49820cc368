"""What a verified token's claims must say for its bearer to be a Keel user.

The signature, `aud`, `iss` and the times' values against the clock are
PyJWT's (entrypoints/http/tokens.py); these are the rules on top, one per
claim, each strict, so that one identity has one spelling:

- `sub`: the canonical UUID text, lower-case and hyphenated, nothing around
  it (no upper case, `urn:uuid:`, braces or bare hex); not the nil or the
  max UUID.
- `exp`: required; `iat`, `nbf`: optional; each a JSON number.
- `email`: optional (absent, null or "" -- Supabase's phone sign-ins -- is
  none); else at most 254 characters of one plausible `local@domain.tld`
  without control, format, separator or surrogate characters.
- `role`: absent or `authenticated` is a user; `anon`, `service_role` and
  any other value are not (403).
- `is_anonymous`: absent or false is a user; true is not (403).

A token that breaks a rule is refused with ClaimError (401), one that is
well formed but is not a user's with NotAUserError (403).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from uuid import UUID

USER_ROLE = "authenticated"
MAX_EMAIL_CHARS = 254
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NOT_USERS = frozenset({UUID(int=0), UUID(int=(1 << 128) - 1)})
_EMAIL = re.compile(r"[^@]{1,64}@[^@.][^@]*\.[^@.]+")


class ClaimError(Exception):
    """A claim breaks its rule: the token is invalid."""


class NotAUserError(Exception):
    """A valid token, but not a signed-in user's (anonymous, a service key)."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: UUID
    email: str | None
    expires_at: int  # `exp`, whole seconds since the epoch, as PyJWT compares it


def identity_of(claims: dict[str, Any]) -> Identity:
    """The user a verified token names; raises ClaimError or NotAUserError."""
    user_id = _subject(claims.get("sub"))
    expires_at = _time(claims, "exp", required=True)
    _time(claims, "iat")
    _time(claims, "nbf")
    email = _email(claims.get("email"))
    role = claims.get("role", USER_ROLE)
    if role != USER_ROLE:
        shown = role if role in ("anon", "service_role") else "other"
        raise NotAUserError(f"a token whose role is {shown} is not a user's (only {USER_ROLE})")
    anonymous = claims.get("is_anonymous", False)
    if not isinstance(anonymous, bool):
        raise ClaimError("is_anonymous must be true or false")
    if anonymous:
        raise NotAUserError("an anonymous sign-in is not a user")
    return Identity(user_id, email, expires_at)


def _subject(sub: object) -> UUID:
    if not isinstance(sub, str) or not _CANONICAL_UUID.fullmatch(sub):
        raise ClaimError("sub must be a UUID in lower-case hyphenated form")
    user_id = UUID(sub)
    if user_id in _NOT_USERS:
        raise ClaimError("sub must not be the nil or the max UUID")
    return user_id


def _time(claims: dict[str, Any], name: str, *, required: bool = False) -> int:
    if name not in claims and not required:
        return 0
    value = claims.get(name)
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            return int(value)
        except (OverflowError, ValueError):  # infinity, NaN
            pass
    raise ClaimError(f"{name} must be a number of seconds since the epoch")


def _email(email: object) -> str | None:
    if email is None or email == "":
        return None
    if not isinstance(email, str) or len(email) > MAX_EMAIL_CHARS:
        raise ClaimError(f"email must be an address of at most {MAX_EMAIL_CHARS} characters")
    if any(unicodedata.category(char)[0] in "CZ" for char in email) or not _EMAIL.fullmatch(email):
        raise ClaimError("email must be one plausible address, without spaces or controls")
    return email
