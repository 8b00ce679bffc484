"""Keys tests: make passphrase-protected key files cheap to write (test-only scrypt work factor)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # QSAFE_SCRYPT_WORK_FACTOR is a test-only knob (docs/keys.md); production writes work factor 18.
    monkeypatch.setenv("QSAFE_SCRYPT_WORK_FACTOR", "10")
    monkeypatch.delenv("QSAFE_PASSPHRASE", raising=False)
