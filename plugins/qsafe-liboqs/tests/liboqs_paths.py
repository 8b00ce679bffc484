"""Paths the qsafe-liboqs tests read (a module of its own: the tests folder is not a package)."""

from __future__ import annotations

from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]
VECTORS = Path(__file__).resolve().parent / "vectors"
