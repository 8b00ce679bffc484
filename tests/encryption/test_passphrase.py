"""The in-memory passphrase API other areas use for secrets at rest, and generate_identity."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import qsafe
from qsafe._age import decrypt_with_passphrase, encrypt_with_passphrase, is_age_file
from qsafe.encryption import generate_identity, identity_file_text
from qsafe.errors import FormatError, IntegrityError, NoIdentityMatchedError, UsageError, WrongPassphraseError

SECRET = b"-----BEGIN PRIVATE KEY-----\nMDICAQAwCwYJYIZIAWUDBAMSBCCxZ7\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("armor", [True, False])
def test_round_trip(armor: bool) -> None:
    sealed = encrypt_with_passphrase(SECRET, b"correct horse", work_factor=10, armor=armor)
    assert sealed.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n" if armor else b"age-encryption.org/v1\n-> scrypt ")
    assert is_age_file(sealed)
    assert decrypt_with_passphrase(sealed, b"correct horse") == SECRET


def test_default_is_armored_and_work_factor_18_is_recorded() -> None:
    sealed = encrypt_with_passphrase(b"x", b"pw", work_factor=11)
    assert sealed.endswith(b"-----END AGE ENCRYPTED FILE-----\n")
    import base64

    inner = base64.b64decode(b"".join(sealed.splitlines()[1:-1]))
    assert inner.split(b"\n")[1].split(b" ")[:2] == [b"->", b"scrypt"]
    assert inner.split(b"\n")[1].endswith(b" 11")


def test_wrong_passphrase() -> None:
    sealed = encrypt_with_passphrase(SECRET, b"right", work_factor=10)
    with pytest.raises(WrongPassphraseError):
        decrypt_with_passphrase(sealed, b"wrong")


def test_tampered_payload_and_header() -> None:
    sealed = bytearray(encrypt_with_passphrase(SECRET, b"pw", work_factor=10, armor=False))
    payload = bytearray(sealed)
    payload[-1] ^= 1
    with pytest.raises(IntegrityError):
        decrypt_with_passphrase(bytes(payload), b"pw")
    mac_line = sealed.index(b"\n--- ") + 5
    mac = bytearray(sealed)
    mac[mac_line] = ord("A") if mac[mac_line] != ord("A") else ord("B")
    with pytest.raises((IntegrityError, FormatError)):
        decrypt_with_passphrase(bytes(mac), b"pw")


def test_not_age_and_excessive_work_factor() -> None:
    with pytest.raises(FormatError):
        decrypt_with_passphrase(SECRET, b"pw")
    assert not is_age_file(SECRET)
    sealed = encrypt_with_passphrase(b"x", b"pw", work_factor=12)
    with pytest.raises(FormatError, match="work factor"):
        decrypt_with_passphrase(sealed, b"pw", max_work_factor=11)


def test_age_file_not_for_a_passphrase() -> None:
    _, recipient = generate_identity("x25519")
    out = io.BytesIO()
    qsafe.encrypt(io.BytesIO(b"data"), out, recipients=[recipient])
    with pytest.raises(NoIdentityMatchedError):
        decrypt_with_passphrase(out.getvalue(), b"pw")


@pytest.mark.parametrize(("algorithm", "id_prefix", "rcpt_prefix"), [
    ("ml-kem-768-x25519", "AGE-SECRET-KEY-PQ-1", "age1pq1"), ("x25519", "AGE-SECRET-KEY-1", "age1")])
def test_generate_identity(algorithm: str, id_prefix: str, rcpt_prefix: str) -> None:
    identity, recipient = generate_identity(algorithm)
    assert identity.startswith(id_prefix) and recipient.startswith(rcpt_prefix)
    assert generate_identity(algorithm)[0] != identity
    out, back = io.BytesIO(), io.BytesIO()
    qsafe.encrypt(io.BytesIO(b"payload"), out, recipients=[recipient])
    qsafe.decrypt(io.BytesIO(out.getvalue()), back, identities=[identity])
    assert back.getvalue() == b"payload"


def test_generate_identity_unknown_algorithm() -> None:
    with pytest.raises(UsageError):
        generate_identity("rsa")


def test_passphrase_protected_identity_file(tmp_path: Path) -> None:
    identity, recipient = generate_identity()
    key_file = tmp_path / "me.key"
    key_file.write_bytes(encrypt_with_passphrase(identity_file_text(identity, recipient).encode(), b"kp",
                                                 work_factor=10))
    qsafe.encrypt(io.BytesIO(b"model"), tmp_path / "m.age", recipients=[recipient])
    qsafe.decrypt(tmp_path / "m.age", tmp_path / "m", identity_files=[key_file], identity_passphrase=lambda: b"kp")
    assert (tmp_path / "m").read_bytes() == b"model"
    with pytest.raises(WrongPassphraseError):
        qsafe.decrypt(tmp_path / "m.age", tmp_path / "m2", identity_files=[key_file], identity_passphrase=b"no")
    assert not (tmp_path / "m2").exists()
