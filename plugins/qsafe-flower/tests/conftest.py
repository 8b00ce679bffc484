"""Fixtures for the qsafe-flower tests: Flower messages built by hand, as a SuperLink would deliver them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower's Message() needs the identity of the running task; give it one for hand-made messages."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
