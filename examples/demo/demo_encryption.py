"""Demo step: post-quantum encryption of a model directory in the age format, and a tampered file refused.

Makes a passphrase-protected ML-KEM-768+X25519 identity with ``qsafe keygen``, encrypts the demo model
directory (``workdir/model`` from the signing step, or a small one made here) to its ``age1pq1…`` recipient as one
deterministic tar stream, extracts it with ``qsafe decrypt --extract`` and compares it byte for byte. Then a
copy with one flipped payload bit is refused with exit 14 and nothing extracted, and a wrong identity with 13.
"""

from __future__ import annotations

import filecmp
import functools
import os
import subprocess
from pathlib import Path

from _cli import qsafe  # examples/demo/_cli.py: one runner for every step

TITLE = "Post-quantum encryption (age format, ML-KEM-768 + X25519) and tamper refusal"
PASSPHRASE = "demo identity passphrase"


_qsafe = functools.partial(qsafe, passphrase=PASSPHRASE)

def _expect_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0 or result.stderr:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {result.stderr}")


def _model(workdir: Path) -> Path:
    model = workdir / "model"
    if not model.is_dir():  # the signing step did not run: make a small model directory here
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(os.urandom(300_000))
        (model / "config.json").write_text('{"num_labels": 2}\n')
    return model


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def run(workdir: Path) -> None:
    model, keys = _model(workdir), workdir / "enc-keys"
    keys.mkdir(exist_ok=True)
    _expect_ok(_qsafe("keygen", "--alg", "ml-kem-768-x25519", "--out", keys / "owner"), "keygen")
    recipient = (keys / "owner.pub").read_text().strip()
    print(f"  recipient {recipient[:24]}… ({len(recipient)} characters); identity file protected by a passphrase")
    sealed = workdir / "model.age"
    _expect_ok(_qsafe("encrypt", "-R", keys / "owner.pub", "-o", sealed, model), "encrypt")
    stanza = sealed.read_bytes().split(b"\n")[1][:20].decode()
    print(f"  {sealed.name}: {sealed.stat().st_size} bytes, first stanza '{stanza}…'")
    _expect_ok(_qsafe("decrypt", "-i", keys / "owner.key", "--extract", workdir / "model-decrypted", sealed), "decrypt")
    if not _same_tree(model, workdir / "model-decrypted"):
        raise RuntimeError("the decrypted directory differs from the original")
    print("  decrypted directory is identical to the original")

    tampered = workdir / "model-tampered.age"
    data = bytearray(sealed.read_bytes())
    data[-100] ^= 0x01  # one bit of the payload's last chunk
    tampered.write_bytes(bytes(data))
    bad = _qsafe("decrypt", "-i", keys / "owner.key", "--extract", workdir / "model-from-tampered", tampered)
    print("  " + bad.stderr.strip().replace("\n", "\n  ") + f"\n  exit code {bad.returncode}")
    if bad.returncode != 14 or (workdir / "model-from-tampered").exists():
        raise RuntimeError("the tampered file was not refused with exit 14, or left output behind")

    _expect_ok(_qsafe("keygen", "--alg", "x25519", "--out", keys / "stranger", "--no-passphrase"), "keygen")
    wrong = _qsafe("decrypt", "-i", keys / "stranger.key", "-o", workdir / "never", sealed)
    print(f"  wrong identity: exit code {wrong.returncode}")
    if wrong.returncode != 13 or (workdir / "never").exists():
        raise RuntimeError("a wrong identity was not refused with exit 13")
