"""Loading helpers for the keys known-answer tests (data under tests/vectors/pq, see its PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PQ = Path(__file__).resolve().parents[1] / "vectors" / "pq"


def load(relative: str) -> Any:
    return json.loads((PQ / relative).read_text(encoding="utf-8"))


def acvp_cases(relative: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) pairs of an ACVP file, in file order."""
    return [(group, test) for group in load(relative)["testGroups"] for test in group["tests"]]
