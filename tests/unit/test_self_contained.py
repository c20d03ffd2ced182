"""A fresh clone runs its tests: nothing in tests/ reads files from outside the repository."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# Absolute machine paths, or a step out of the repository into a `shared/` folder beside it
# (hostile upload names such as "../../etc/x.txt" are test data, not paths read).
OUTSIDE = re.compile(
    r"""["'](/work/|/home/|(\.\./)+shared)|parents\[\d\]\s*/\s*["']shared["']"""
    r"""|\.parent\s*/\s*["']shared["']"""
)


def test_no_test_reads_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_open_webui_fixtures_are_in_the_repository() -> None:
    fixtures = TESTS / "fixtures" / "openwebui"
    assert len(list(fixtures.glob("*.json"))) == 8
