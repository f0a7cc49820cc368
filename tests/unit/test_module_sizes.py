"""Modules the size of one idea: none in domain/, application/ or adapters/
is over 300 lines (issue 16), so a module that grows past it is split, not
stretched."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOST_LINES = 300


@pytest.mark.parametrize("layer", ["domain", "application", "adapters"])
def test_no_module_is_over_300_lines(layer: str) -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / layer).rglob("*.py")
    }
    assert sizes, f"no module found under {layer}/"
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}
