"""Interop with the real peers, both directions: Debian's age 1.1.1 (X25519, scrypt, armor) and typage, the npm
package age-encryption 0.3.1 (age's TypeScript implementation: mlkem768x25519 hybrid, X25519, scrypt).

`make peers` installs both (apt age; `npm ci` in tests/interop/node).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import qsafe
from qsafe.encryption import generate_identity, identity_file_text
from qsafe.errors import NoIdentityMatchedError

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
HAVE_AGE = shutil.which("age") is not None and shutil.which("script") is not None
HAVE_TYPAGE = shutil.which("node") is not None and (NODE_DIR / "node_modules" / "age-encryption").is_dir()
needs_age = pytest.mark.skipif(not HAVE_AGE, reason="needs Debian's age and util-linux script (make peers)")
needs_typage = pytest.mark.skipif(not HAVE_TYPAGE, reason="needs node and npm ci in tests/interop/node (make peers)")
SIZES = [0, 1, 65536, 2 * 65536 + 7]
# node starts slowly on a loaded machine: the default run keeps one multi-chunk case per typage feature.
TYPAGE_SIZES = [pytest.param(n, marks=pytest.mark.slow) for n in SIZES[:-1]] + [SIZES[-1]]


def _run(cmd: list[str], data: bytes, cwd: Path | None = None) -> bytes:
    result = subprocess.run(cmd, input=data, capture_output=True, timeout=120, check=False, cwd=cwd)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def _typage(*args: str, data: bytes = b"") -> bytes:
    return _run(["node", str(NODE_DIR / "age.mjs"), *args], data)


def _qsafe_encrypt(plain: bytes, **kwargs: object) -> bytes:
    out = io.BytesIO()
    qsafe.encrypt(io.BytesIO(plain), out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def _qsafe_decrypt(sealed: bytes, **kwargs: object) -> bytes:
    out = io.BytesIO()
    qsafe.decrypt(io.BytesIO(sealed), out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


# --- Debian age 1.1.1 ---------------------------------------------------------------------------------------------
@needs_age
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True])
def test_age_x25519_both_ways(tmp_path: Path, size: int, armor: bool) -> None:
    plain = os.urandom(size)
    identity, recipient = generate_identity("x25519")
    (tmp_path / "k").write_text(identity_file_text(identity, recipient))
    by_age = _run(["age", "-r", recipient, *(["-a"] if armor else [])], plain)
    assert _qsafe_decrypt(by_age, identities=[identity]) == plain
    by_qsafe = _qsafe_encrypt(plain, recipients=[recipient], armor=armor)
    assert _run(["age", "-d", "-i", str(tmp_path / "k")], by_qsafe) == plain


@needs_age
def test_age_keygen_identity_works_in_qsafe(tmp_path: Path) -> None:
    _run(["age-keygen", "-o", str(tmp_path / "k")], b"")
    recipient = _run(["age-keygen", "-y", str(tmp_path / "k")], b"").decode().strip()
    sealed = _qsafe_encrypt(b"to an age-keygen key", recipients=[recipient])
    out = io.BytesIO()
    qsafe.decrypt(io.BytesIO(sealed), out, identity_files=[tmp_path / "k"])
    assert out.getvalue() == b"to an age-keygen key"


@needs_age
def test_age_refuses_qsafe_file_for_other_key(tmp_path: Path) -> None:
    sealed = _qsafe_encrypt(b"x", recipients=[generate_identity("x25519")[1]])
    other, rcpt = generate_identity("x25519")
    (tmp_path / "k").write_text(identity_file_text(other, rcpt))
    result = subprocess.run(["age", "-d", "-i", str(tmp_path / "k")], input=sealed, capture_output=True, check=False)
    assert result.returncode != 0 and b"no identity matched" in result.stderr


@needs_age
def test_age_decrypts_qsafe_passphrase_file(tmp_path: Path) -> None:
    plain = os.urandom(70000)
    (tmp_path / "c.age").write_bytes(_qsafe_encrypt(plain, passphrase=b"interop pass", work_factor=10, armor=True))
    _run(["script", "-qec", "age -d -o p.out c.age", "/dev/null"], b"interop pass\n", cwd=tmp_path)
    assert (tmp_path / "p.out").read_bytes() == plain


@needs_age
@pytest.mark.slow  # age -p always uses scrypt work factor 18
def test_qsafe_decrypts_age_passphrase_file(tmp_path: Path) -> None:
    plain = os.urandom(70000)
    (tmp_path / "p").write_bytes(plain)
    _run(["script", "-qec", "age -p -o c.age p", "/dev/null"], b"typed into age\ntyped into age\n", cwd=tmp_path)
    assert _qsafe_decrypt((tmp_path / "c.age").read_bytes(), passphrase=b"typed into age") == plain


# --- typage (npm age-encryption 0.3.1) ------------------------------------------------------------------------------
@needs_typage
@pytest.mark.parametrize("size", TYPAGE_SIZES)
def test_typage_hybrid_both_ways(size: int) -> None:
    plain = os.urandom(size)
    theirs = json.loads(_typage("keygen", "pq"))
    sealed = _typage("encrypt", "-r", theirs["recipient"], data=plain)
    assert sealed.startswith(b"age-encryption.org/v1\n-> mlkem768x25519 ")
    assert _qsafe_decrypt(sealed, identities=[theirs["identity"]]) == plain
    ours, recipient = generate_identity("ml-kem-768-x25519")
    assert _typage("decrypt", "-i", ours, data=_qsafe_encrypt(plain, recipients=[recipient])) == plain


@needs_typage
def test_typage_recipient_strings_match_ours() -> None:
    theirs = json.loads(_typage("keygen", "pq"))
    from qsafe._age._keys import encode_recipient, parse_identity

    assert encode_recipient(parse_identity(theirs["identity"]).recipient()) == theirs["recipient"]


@needs_typage
@pytest.mark.parametrize("armor", [pytest.param(False, marks=pytest.mark.slow), True])
def test_typage_x25519_and_armor_both_ways(armor: bool) -> None:
    plain = os.urandom(100_000)
    theirs = json.loads(_typage("keygen", "x25519"))
    sealed = _typage("encrypt", "-r", theirs["recipient"], *(["-a"] if armor else []), data=plain)
    assert _qsafe_decrypt(sealed, identities=[theirs["identity"]]) == plain
    ours, recipient = generate_identity("x25519")
    assert _typage("decrypt", "-i", ours, data=_qsafe_encrypt(plain, recipients=[recipient], armor=armor)) == plain


@needs_typage
@pytest.mark.slow
def test_typage_scrypt_both_ways() -> None:
    plain = os.urandom(1000)
    sealed = _typage("encrypt", "-p", "tp", "-w", "10", data=plain)
    assert _qsafe_decrypt(sealed, passphrase=b"tp") == plain
    assert _typage("decrypt", "-p", "tp", data=_qsafe_encrypt(plain, passphrase=b"tp", work_factor=10)) == plain


@needs_typage
@pytest.mark.slow
def test_typage_file_for_someone_else_is_no_match() -> None:
    theirs = json.loads(_typage("keygen", "pq"))
    sealed = _typage("encrypt", "-r", theirs["recipient"], data=b"secret")
    with pytest.raises(NoIdentityMatchedError):
        _qsafe_decrypt(sealed, identities=[generate_identity()[0]])


@needs_age
def test_age_decrypts_an_encrypted_directory_to_a_standard_tar(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "w.bin").write_bytes(os.urandom(70000))
    identity, recipient = generate_identity("x25519")
    (tmp_path / "k").write_text(identity_file_text(identity, recipient))
    qsafe.encrypt(model, tmp_path / "m.age", recipients=[recipient])
    tar = _run(["age", "-d", "-i", str(tmp_path / "k"), str(tmp_path / "m.age")], b"")
    (tmp_path / "out").mkdir()
    _run(["tar", "-x", "-C", str(tmp_path / "out")], tar)
    assert (tmp_path / "out" / "sub" / "w.bin").read_bytes() == (model / "sub" / "w.bin").read_bytes()
    assert _run(["tar", "-t"], tar).decode().split() == ["config.json", "sub/", "sub/w.bin"]
