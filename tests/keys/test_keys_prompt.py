"""The interactive passphrase prompt of ``qsafe keygen``, on a real pseudo-terminal (asked twice, never echoed)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qsafe import keys

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pseudo-terminal")


def _read_until(fd: int, marker: bytes, seen: bytearray, deadline: float) -> None:
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} on the terminal; got {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                raise AssertionError(f"terminal closed before {marker!r}; got {bytes(seen)!r}") from None


def _drain(fd: int, seen: bytearray) -> None:
    """Read what the exited child left on the terminal (EIO once it is empty and closed)."""
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk


def test_keygen_prompts_on_a_terminal(tmp_path: Path) -> None:
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if k != "QSAFE_PASSPHRASE"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "qsafe", "keygen", "--out", str(tmp_path / "k")],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        _read_until(master, b"Passphrase for the new key:", seen, deadline)
        os.write(master, b"typed at the prompt\n")
        _read_until(master, b"Repeat for confirmation:", seen, deadline)
        os.write(master, b"typed at the prompt\n")
        assert proc.wait(timeout=60) == 0
        _drain(master, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"typed at the prompt" not in seen  # hidden input
    key = keys.load_private_key(tmp_path / "k.key", b"typed at the prompt")
    assert key.public_key().key_id.encode() in seen
