"""domain/rules.py over the full role matrix.

The expected outcomes are written out from API.md's role table rather than
derived from Role.rank, so that a wrong rank or a wrong rule fails a case.
"""

from __future__ import annotations

import itertools

import pytest

from domain.entities import Role
from domain.errors import PermissionDeniedError
from domain.rules import check_role_change, require_role

OWNER, ADMIN, MEMBER, VIEWER = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER

# actual role -> every minimum role it satisfies
SATISFIES: dict[Role, set[Role]] = {
    OWNER: {OWNER, ADMIN, MEMBER, VIEWER},
    ADMIN: {ADMIN, MEMBER, VIEWER},
    MEMBER: {MEMBER, VIEWER},
    VIEWER: {VIEWER},
}

ROLE_MATRIX = list(itertools.product(Role, Role))


def test_the_matrix_covers_every_role() -> None:
    assert set(SATISFIES) == set(Role)
    assert len(ROLE_MATRIX) == 16


@pytest.mark.parametrize(("actual", "minimum"), ROLE_MATRIX)
def test_require_role(actual: Role, minimum: Role) -> None:
    if minimum in SATISFIES[actual]:
        require_role(actual, minimum, "doing it")  # raises if refused
    else:
        with pytest.raises(PermissionDeniedError) as raised:
            require_role(actual, minimum, "doing it")
        assert raised.value.detail == (
            f"doing it needs the {minimum.value} role; you are {actual.value}"
        )


@pytest.mark.parametrize(("actual", "minimum"), ROLE_MATRIX)
def test_at_least_agrees_with_the_table(actual: Role, minimum: Role) -> None:
    assert actual.at_least(minimum) is (minimum in SATISFIES[actual])


def _may_change(actor: Role, current: Role | None, new: Role | None) -> bool:
    """API.md: admins manage members who are not owners; owners manage anyone."""
    if actor is OWNER:
        return True
    if actor is ADMIN:
        return OWNER not in (current, new)
    return False


ROLE_OR_NONE: list[Role | None] = [None, *Role]
CHANGE_MATRIX = list(itertools.product(Role, ROLE_OR_NONE, ROLE_OR_NONE))


@pytest.mark.parametrize(("actor", "current", "new"), CHANGE_MATRIX)
def test_check_role_change(actor: Role, current: Role | None, new: Role | None) -> None:
    if _may_change(actor, current, new):
        check_role_change(actor, current, new)  # raises if refused
    else:
        with pytest.raises(PermissionDeniedError):
            check_role_change(actor, current, new)


@pytest.mark.parametrize(
    ("actor", "current", "new", "allowed"),
    [
        pytest.param(OWNER, None, OWNER, True, id="owner adds an owner"),
        pytest.param(OWNER, OWNER, VIEWER, True, id="owner demotes an owner"),
        pytest.param(OWNER, OWNER, None, True, id="owner removes an owner"),
        pytest.param(ADMIN, None, ADMIN, True, id="admin adds an admin"),
        pytest.param(ADMIN, ADMIN, VIEWER, True, id="admin demotes another admin"),
        pytest.param(ADMIN, VIEWER, None, True, id="admin removes a viewer"),
        pytest.param(ADMIN, None, OWNER, False, id="admin adds an owner"),
        pytest.param(ADMIN, MEMBER, OWNER, False, id="admin promotes to owner"),
        pytest.param(ADMIN, OWNER, MEMBER, False, id="admin demotes an owner"),
        pytest.param(ADMIN, OWNER, None, False, id="admin removes an owner"),
        pytest.param(MEMBER, None, VIEWER, False, id="member adds a viewer"),
        pytest.param(MEMBER, VIEWER, None, False, id="member removes a viewer"),
        pytest.param(VIEWER, VIEWER, MEMBER, False, id="viewer promotes itself"),
    ],
)
def test_check_role_change_named_cases(
    actor: Role, current: Role | None, new: Role | None, allowed: bool
) -> None:
    if allowed:
        check_role_change(actor, current, new)
    else:
        with pytest.raises(PermissionDeniedError):
            check_role_change(actor, current, new)


def test_non_admins_are_told_they_need_admin() -> None:
    with pytest.raises(PermissionDeniedError, match="needs the admin role; you are member"):
        check_role_change(MEMBER, VIEWER, None)


def test_admins_are_told_only_owners_manage_owners() -> None:
    with pytest.raises(PermissionDeniedError, match="only an owner"):
        check_role_change(ADMIN, None, OWNER)
