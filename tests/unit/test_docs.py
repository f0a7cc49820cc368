"""The documents hold together: every relative link and anchor in README.md,
SECURITY.md, BENCHMARKS.md and docs/ leads somewhere, every KEEL_* setting
is in docs/settings.md's table, and the README's quick start is the two
commands CI runs as a newcomer would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrypoints.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "SECURITY.md",
        ROOT / "BENCHMARKS.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
_FENCE = re.compile(r"```.*?```", re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#+\s+(.*)$", re.MULTILINE)


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    return {_anchor(heading) for heading in _HEADING.findall(_FENCE.sub("", document.read_text()))}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    broken = []
    for link in _LINK.findall(_FENCE.sub("", document.read_text())):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        if not target.exists() or (
            anchor and target.suffix == ".md" and anchor not in _anchors(target)
        ):
            broken.append(link)
    assert broken == []


def test_every_setting_is_in_the_settings_table() -> None:
    table = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\|[^|]*", table, re.MULTILINE))
    named = {name for cell in documented for name in re.findall(r"`(KEEL_\w+)`", cell)}
    assert {PREFIX + name.upper() for name in Settings.__struct_fields__} - named == set()


def test_the_readme_quick_start_is_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3 tasks\.py dev\b", readme, re.MULTILINE)
    assert re.search(r"^python3 tasks\.py test\b", readme, re.MULTILINE)
    assert re.search(r"^python3 tasks\.py test$", ci, re.MULTILINE)
