"""The complete CCTV age suite (tests/vectors/age): every vector runs, each failure class maps to one error.

Mapping (also in docs/encryption.md):
  success -> plaintext hash matches; header failure, armor failure -> FormatError (exit 3);
  HMAC failure, payload failure -> IntegrityError (14), and the plaintext released before the failure matches
  the vector's hash; no match -> NoIdentityMatchedError (13), or WrongPassphraseError (4) when only passphrases
  were tried against a scrypt stanza.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qsafe._age._core import decrypt_to, read_age
from qsafe._age._keys import parse_identity
from qsafe._age._recipients import ScryptIdentity
from qsafe.errors import FormatError, IntegrityError, NoIdentityMatchedError, QsafeError, WrongPassphraseError

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors" / "age"
NOT_VECTORS = {"README.cctv.md", "LICENSE", "PROVENANCE.md"}
EXPECTED = {"header failure": FormatError, "armor failure": FormatError, "HMAC failure": IntegrityError,
            "payload failure": IntegrityError}


@dataclass
class Vector:
    name: str
    expect: str
    payload: str
    body: bytes
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False


def load(path: Path) -> Vector:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return Vector(path.name, fields["expect"][0], fields.get("payload", [""])[0], body,
                  fields.get("identity", []), fields.get("passphrase", []), fields.get("armored") == ["yes"])


def all_vectors() -> list[Path]:
    return sorted(p for p in VECTOR_DIR.iterdir() if p.name not in NOT_VECTORS)


def run_vector(vec: Vector, parallel: bool) -> tuple[bytes, QsafeError | None]:
    """Decrypt like an application would: collect released plaintext until success or the first error.

    ``parallel`` selects the file path (thread-pool pipeline) or the sequential generator (directory extraction).
    """
    identities = [parse_identity(i) for i in vec.identities] + [ScryptIdentity(p.encode()) for p in vec.passphrases]
    released = bytearray()
    try:
        if parallel:
            decrypt_to(io.BytesIO(vec.body), identities, released.extend)
        else:
            for chunk in read_age(io.BytesIO(vec.body), identities):
                released += chunk
    except QsafeError as err:
        return bytes(released), err
    return bytes(released), None


def test_suite_is_complete() -> None:
    vectors = all_vectors()
    assert len(vectors) == 143
    assert {load(p).expect for p in vectors} == {"success", "no match", "HMAC failure", "header failure",
                                                 "payload failure", "armor failure"}


@pytest.mark.parametrize("mode", ["pipeline", "pipeline-threads", "sequential"])
@pytest.mark.parametrize("path", all_vectors(), ids=lambda p: p.name)
def test_cctv_vector(path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "pipeline-threads":  # one chunk per batch: every multi-chunk vector runs on the thread pool
        monkeypatch.setattr("qsafe._age._pipeline.BATCH", 1)
    parallel = mode != "sequential"
    vec = load(path)
    released, err = run_vector(vec, parallel)
    if vec.expect == "success":
        assert err is None, f"{vec.name}: {err!r}"
        assert hashlib.sha256(released).hexdigest() == vec.payload
        return
    assert err is not None, f"{vec.name} decrypted but should fail with {vec.expect}"
    if vec.expect == "no match":
        scrypt_only = bool(vec.passphrases) and not vec.identities and b"-> scrypt " in vec.body
        expected: type[QsafeError] = WrongPassphraseError if scrypt_only else NoIdentityMatchedError
    else:
        expected = EXPECTED[vec.expect]
    assert type(err) is expected, f"{vec.name}: expected {expected.__name__}, got {type(err).__name__}: {err}"
    if vec.expect == "payload failure":
        assert hashlib.sha256(released).hexdigest() == vec.payload
    else:
        assert released == b""
