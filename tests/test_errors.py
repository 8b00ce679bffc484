"""The README's exit-code table and qsafe/errors.py agree, and codes stay in their documented ranges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import qsafe
from qsafe import errors

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_table() -> dict[str, int]:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name: int(code) for code, name in rows}


def test_readme_table_matches_error_tree() -> None:
    table = _readme_table()
    code = {cls.__name__: cls.exit_code for cls in errors.all_error_classes() if cls is not errors.QsafeError}
    assert table == code


def test_codes_in_documented_ranges() -> None:
    for cls in errors.all_error_classes():
        if cls is errors.QsafeError:
            continue
        if issubclass(cls, errors.UsageError):
            assert cls.exit_code == 2
        elif issubclass(cls, errors.CouldNotCheckError):
            assert 3 <= cls.exit_code <= 6
        elif issubclass(cls, errors.RejectedError):
            assert 10 <= cls.exit_code <= 19
        else:  # pragma: no cover - the tree has no other branch
            pytest.fail(f"{cls.__name__} is outside the three documented branches")
        assert cls.hint, cls


def test_every_class_exported() -> None:
    for cls in errors.all_error_classes():
        assert cls.__name__ in errors.__all__


def test_public_api_names_resolve_lazily() -> None:
    assert sorted(qsafe.__all__) == sorted(["__version__", *qsafe._LAZY])
    for name in ("errors", "keys", "sign", "verify", "VerificationPolicy", "encrypt", "decrypt"):
        assert getattr(qsafe, name) is not None
