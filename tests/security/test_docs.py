"""docs/security.md lists every limit of qsafe/_limits.py with its value (and nothing else)."""

from __future__ import annotations

import re

from qsafe import _limits

from .conftest import REPO


def test_limits_table_matches_the_limits_module() -> None:
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (-?[\d,]+)", section, re.MULTILINE)
    documented = {name: int(value.replace(",", "")) for name, value in rows}
    assert documented == _limits.all_limits()


def test_every_limit_is_explained_in_the_module() -> None:
    source = (REPO / "qsafe" / "_limits.py").read_text().splitlines()
    for name in _limits.all_limits():
        line = next(i for i, text in enumerate(source) if text.startswith(f"{name} = "))
        assert source[line - 1].startswith("#:"), f"{name} has no #: comment saying what it bounds"
