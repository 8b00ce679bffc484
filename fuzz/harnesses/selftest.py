"""Not a parser: proves that the driver and the runner report a crash (tests/fuzzing/test_fuzz.py runs it)."""

from __future__ import annotations

from qsafe.errors import FormatError


def test_one_input(data: bytes) -> None:
    if data.startswith(b"qsafe"):
        raise FormatError("a clean refusal")
    if data.startswith(b"crash"):
        raise ValueError("an exception outside qsafe's error tree")
