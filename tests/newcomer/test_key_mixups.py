"""`decrypt -i ops.pub` said "an age identity must be upper case" (issue 13 item 3): a public key or a signing key
given as an identity is named as such, with the file to pass instead, as the encrypt side already does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsafe.encryption import encrypt, generate_identity
from qsafe.errors import KeyFileError

ENV = {"QSAFE_PASSPHRASE": "pw", "QSAFE_SCRYPT_WORK_FACTOR": "10"}


@pytest.mark.parametrize("given", ["ops.pub", "release.pub", "release.key"])
def test_decrypt_with_a_public_or_signing_key_names_the_mixup(cli: Callable[..., Any], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(["keygen", "--alg", "ml-kem-768-x25519", "--out", "ops"], env=ENV).exit_code == 0
    assert cli(["keygen", "--out", "release"], env=ENV).exit_code == 0
    (tmp_path / "m.txt").write_text("model\n")
    assert cli(["encrypt", "-R", "ops.pub", "-o", "m.age", "m.txt"], env=ENV).exit_code == 0
    res = cli(["decrypt", "-i", given, "-o", "out.txt", "m.age"], env=ENV)
    assert res.exit_code == 4
    assert "must be upper case" not in res.stderr
    if given == "ops.pub":
        assert f"qsafe: error: {given}: this is a public key (an age recipient), not an identity" in res.stderr
        assert "PREFIX.pub is what others encrypt to" in res.stderr
    else:
        assert f"qsafe: error: {given}: a PEM key is not an age identity" in res.stderr
    assert ".key file of `qsafe keygen --alg ml-kem-768-x25519" in res.stderr
    assert not (tmp_path / "out.txt").exists()


def test_library_names_a_recipient_given_as_identity(tmp_path: Path) -> None:
    from qsafe import decrypt

    _identity, recipient = generate_identity()
    (tmp_path / "m.txt").write_text("model\n")
    encrypt(tmp_path / "m.txt", tmp_path / "m.age", recipients=[recipient])
    with pytest.raises(KeyFileError, match="this is a public key \\(an age recipient\\), not an identity"):
        decrypt(tmp_path / "m.age", tmp_path / "out.txt", identities=[recipient])


def test_debian_age_reads_x25519_files_but_not_post_quantum_ones(tmp_path: Path) -> None:
    """The interop claim as README states it: post-quantum recipients need age >= 1.3; an older age (Debian's
    1.1.1 here) decrypts qsafe's X25519 files and says "no identity matched" for a hybrid one."""
    import shutil
    import subprocess

    age, age_keygen = shutil.which("age"), shutil.which("age-keygen")
    if age is None or age_keygen is None:
        pytest.skip("Debian's age is not installed (make peers installs it)")
    version = subprocess.run([age, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([age_keygen, "-o", str(tmp_path / "id.txt")], capture_output=True, check=True)
    x25519_recipient = next(line.split(": ")[1] for line in (tmp_path / "id.txt").read_text().splitlines()
                            if line.startswith("# public key: "))
    (tmp_path / "m.txt").write_text("model\n")
    encrypt(tmp_path / "m.txt", tmp_path / "classic.age", recipients=[x25519_recipient])
    ok = subprocess.run([age, "-d", "-i", str(tmp_path / "id.txt"), str(tmp_path / "classic.age")],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout == "model\n"
    _identity, pq_recipient = generate_identity()
    encrypt(tmp_path / "m.txt", tmp_path / "pq.age", recipients=[pq_recipient])
    old = subprocess.run([age, "-d", "-i", str(tmp_path / "id.txt"), str(tmp_path / "pq.age")],
                         capture_output=True, text=True, check=False)
    if tuple(int(p) for p in version.lstrip("v").split(".")[:2]) < (1, 3):
        assert old.returncode != 0 and "no identity matched" in old.stderr
