"""One problem type, one title: the domain's errors and Litestar's own HTTP
errors (404 for an unknown route, 429 from the rate limiter, 413, ...) that
share a type also share its title."""

from __future__ import annotations

from http import HTTPStatus

from domain import errors
from entrypoints.http.errors import _phrase, _slug


def _subclasses(kind: type) -> list[type]:
    found = []
    for sub in kind.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_problem_type_has_one_title() -> None:
    titles = [kind.title for kind in _subclasses(errors.DomainError)]
    titles += [_phrase(status) for status in HTTPStatus if status >= 400]
    by_type: dict[str, set[str]] = {}
    for title in titles:
        by_type.setdefault(_slug(title), set()).add(title)
    assert {slug: found for slug, found in by_type.items() if len(found) > 1} == {}
    assert _slug(_phrase(404)) == _slug(errors.NotFoundError.title)
    assert _slug(_phrase(503)) == _slug(errors.UnavailableError.title)
