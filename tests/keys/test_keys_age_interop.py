"""Protected key files interoperate with the real age CLI (Debian age 1.1.1), both ways.

age reads passphrases only from a terminal, so each call runs under ``script`` (util-linux), which gives it a
pseudo-terminal fed from our stdin.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsafe import keys

pytestmark = pytest.mark.skipif(not (shutil.which("age") and shutil.which("script")),
                                reason="needs the age CLI and util-linux script (apt-get install age)")


def _age_tty(command: str, answers: bytes, cwd: Path) -> None:
    result = subprocess.run(["script", "-qec", command, "/dev/null"], input=answers, cwd=cwd,
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout.decode(errors="replace")


def test_age_decrypts_a_qsafe_key_file(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-65")
    keys.write_key_pair(private, tmp_path / "k", b"age interop pass")
    _age_tty("age -d -o plain.pem k.key", b"age interop pass\n", tmp_path)
    assert (tmp_path / "plain.pem").read_bytes() == private.to_pem()


@pytest.mark.slow  # age -p always uses work factor 18: seconds of scrypt on a loaded machine
def test_qsafe_loads_a_key_protected_by_age(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-65-ed25519")
    (tmp_path / "plain.pem").write_bytes(private.to_pem())
    _age_tty("age -p -a -o k.key plain.pem", b"typed into age\ntyped into age\n", tmp_path)  # work factor 18
    loaded = keys.load_private_key(tmp_path / "k.key", b"typed into age")
    assert loaded.public_key().key_id == private.public_key().key_id


def test_age_uses_a_protected_x25519_identity_from_keygen(cli: Callable[..., Any], tmp_path: Path) -> None:
    """age itself opens qsafe's passphrase-protected identity file (age -d -i asks for its passphrase)."""
    result = cli(["keygen", "--alg", "x25519", "--out", tmp_path / "id"], env={"QSAFE_PASSPHRASE": "id pass"})
    assert (result.exit_code, result.stderr) == (0, "")
    (tmp_path / "msg.txt").write_bytes(b"to the x25519 identity")
    subprocess.run(["age", "-R", "id.pub", "-o", "msg.age", "msg.txt"], cwd=tmp_path, check=True, timeout=30)
    _age_tty("age -d -i id.key -o out.txt msg.age", b"id pass\n", tmp_path)
    assert (tmp_path / "out.txt").read_bytes() == b"to the x25519 identity"
