"""A pytest plugin for `keel audit`: every test of tests/security counted under
its attack class (tests/security/attacks.py) and written as one JSON report.

pytest's JUnit XML names the tests but not their classes, and here a module
missing from the map stops the audit before anything runs. Loaded only by
the audit (`-p tests.security.audit_plugin --audit-report PATH`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.attacks import ATTACK_CLASSES, class_of

SECURITY = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--audit-report", metavar="PATH", help="write the audit's JSON report here")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("audit_report")
    if path:
        config.pluginmanager.register(AuditReport(Path(path)), "keel-audit-report")


class AuditReport:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: dict[str, str] = {}  # node id: held, failed or skipped

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        unmapped = sorted(
            {
                item.path.stem
                for item in items
                if item.path.parent == SECURITY and class_of(item.path.stem) is None
            }
        )
        if unmapped:
            raise pytest.UsageError(
                f"tests/security modules with no attack class: {', '.join(unmapped)}"
                " (add each to tests/security/attacks.py)"
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        before = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and before is None:
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed and before is None:
            self.outcomes[report.nodeid] = "held"

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        classes = []
        for attack in ATTACK_CLASSES:
            mine = {
                node: outcome
                for node, outcome in self.outcomes.items()
                if Path(node.split("::")[0]).stem in attack.modules
            }
            counts = {kind: sum(o == kind for o in mine.values()) for kind in OUTCOMES}
            classes.append(
                {
                    "name": attack.name,
                    "what": attack.what,
                    "modules": list(attack.modules),
                    **counts,
                    "failures": sorted(n for n, o in mine.items() if o == "failed"),
                }
            )
        report = {"exit_status": int(exitstatus), "classes": classes}
        self.path.write_text(json.dumps(report, indent=2), encoding="utf-8")


OUTCOMES = ("held", "failed", "skipped")
