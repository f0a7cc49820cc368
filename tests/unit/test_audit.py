"""`keel audit`'s map of attack classes, and the table it keeps in SECURITY.md."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from entrypoints.audit import BEGIN, END, replace_table, summary_lines, table, table_classes
from entrypoints.cli import main
from tests.security.attacks import ATTACK_CLASSES, class_of

ROOT = Path(__file__).resolve().parents[2]
SECURITY = ROOT / "tests" / "security"


def _report(failed: int = 0) -> dict[str, Any]:
    classes = [
        {
            "name": attack.name,
            "what": attack.what,
            "modules": list(attack.modules),
            "held": 3,
            "failed": failed,
            "skipped": 0,
            "failures": [f"tests/security/{attack.modules[0]}.py::test_x"] * failed,
        }
        for attack in ATTACK_CLASSES
    ]
    return {"exit_status": 1 if failed else 0, "classes": classes}


def test_every_security_module_has_exactly_one_attack_class() -> None:
    modules = {path.stem for path in SECURITY.glob("test_*.py")}
    mapped = [module for attack in ATTACK_CLASSES for module in attack.modules]
    assert sorted(mapped) == sorted(set(mapped)), "a module in two classes"
    assert set(mapped) == modules
    assert all(class_of(module) for module in modules)
    assert len({attack.name for attack in ATTACK_CLASSES}) == len(ATTACK_CLASSES)


def test_security_md_lists_exactly_the_attack_classes() -> None:
    document = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert document.count(BEGIN) == document.count(END) == 1
    assert table_classes(document) == [attack.name for attack in ATTACK_CLASSES]


def test_the_table_replaces_only_its_block() -> None:
    document = f"# Before\n\n{BEGIN}\nold table\n{END}\n\n## After\n"
    replaced = replace_table(document, _report())
    assert replaced.startswith("# Before\n\n")
    assert replaced.endswith(f"{END}\n\n## After\n")
    assert "old table" not in replaced
    assert table_classes(replaced) == [attack.name for attack in ATTACK_CLASSES]
    with pytest.raises(ValueError, match="no audit block"):
        replace_table("# no markers\n", _report())


def test_the_table_and_the_lines_count_every_class() -> None:
    when = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    rows = table(_report(failed=1), when).splitlines()
    count = len(ATTACK_CLASSES)
    assert (
        f"2026-12-07 23:00 UTC: {4 * count} attacks tried, {3 * count} held, {count} failed."
        in (rows[2])
    )
    lines = summary_lines(_report(failed=1))
    tried, held = str(4 * count), str(3 * count)
    assert lines[-1].split() == ["all", "tried", tried, "held", held, "failed", str(count)]
    assert sum(line.strip().startswith("FAILED tests/security/") for line in lines) == count


def test_write_needs_the_whole_suite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["audit", "--write", str(tmp_path / "S.md"), "--", "-k", "jwt"]) == 2
    assert "--write needs the whole suite" in capsys.readouterr().err
