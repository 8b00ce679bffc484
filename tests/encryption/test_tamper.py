"""Tamper-evidence properties: hypothesis flips, truncates, appends and reorders bytes of age files and asserts
the specific error, and that only authenticated plaintext (a prefix of the original) is ever released."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsafe._age._core import decrypt_to
from qsafe._age._keys import parse_identity
from qsafe._age._stream import CT_CHUNK, NONCE_SIZE
from qsafe.encryption import encrypt, generate_identity
from qsafe.errors import FormatError, IntegrityError, NoIdentityMatchedError, QsafeError

PLAIN = os.urandom(2 * 65536 + 1000)  # three chunks: the last one short
IDENTITY, RECIPIENT = generate_identity("x25519")
PQ_IDENTITY, PQ_RECIPIENT = generate_identity("ml-kem-768-x25519")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seal(recipient: str, armor: bool = False, plain: bytes = PLAIN) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(plain), out, recipients=[recipient], armor=armor)
    return out.getvalue()


SEALED = _seal(RECIPIENT)
PQ_SEALED = _seal(PQ_RECIPIENT)
ARMORED_PLAIN = PLAIN[:5000]
ARMORED = _seal(RECIPIENT, armor=True, plain=ARMORED_PLAIN)  # small: armor decoding goes line by line


def _header_len(data: bytes) -> int:
    return data.index(b"\n", data.index(b"\n--- ") + 1) + 1


def _open(data: bytes, identity: str = IDENTITY) -> tuple[bytes, QsafeError | None]:
    released = bytearray()
    try:  # the parallel pipeline used for files (the CCTV suite runs both paths)
        decrypt_to(io.BytesIO(data), [parse_identity(identity)], released.extend)
    except QsafeError as err:
        return bytes(released), err
    return bytes(released), None


def _expect(data: bytes, allowed: tuple[type[QsafeError], ...], identity: str = IDENTITY, plain: bytes = PLAIN
            ) -> None:
    released, err = _open(data, identity)
    assert err is not None, "a modified file decrypted"
    assert type(err) in allowed, f"{type(err).__name__}: {err}"
    assert plain.startswith(released), "unauthenticated plaintext was released"
    if type(err) is NoIdentityMatchedError or (type(err) is FormatError and not data.startswith(b"-----")):
        assert released == b""  # header-level failures release nothing


def test_untouched_files_decrypt() -> None:
    assert _open(SEALED) == (PLAIN, None)
    assert _open(PQ_SEALED, PQ_IDENTITY) == (PLAIN, None)
    assert _open(ARMORED) == (ARMORED_PLAIN, None)


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


@FAST
@given(pos=st.integers(0, len(SEALED) - 1), mask=st.integers(1, 255))
def test_flip_anywhere(pos: int, mask: int) -> None:
    header_end = _header_len(SEALED)
    mac_start = SEALED.index(b"\n--- ") + 1
    if pos >= header_end:  # nonce or payload: the STREAM key or a chunk tag no longer matches
        allowed: tuple[type[QsafeError], ...] = (IntegrityError,)
    elif pos >= mac_start:  # MAC line: a different (canonical) MAC, or a malformed line
        allowed = (IntegrityError, FormatError)
    else:  # version line or stanza: malformed, or a stanza that no longer opens
        allowed = (FormatError, NoIdentityMatchedError)
    _expect(_flip(SEALED, pos, mask), allowed)


@settings(max_examples=25, deadline=None)
@given(pos=st.integers(0, len(PQ_SEALED) - 1), mask=st.integers(1, 255))
def test_flip_anywhere_hybrid(pos: int, mask: int) -> None:
    header_end = _header_len(PQ_SEALED)
    mac_start = PQ_SEALED.index(b"\n--- ") + 1
    allowed = ((IntegrityError,) if pos >= header_end else (IntegrityError, FormatError) if pos >= mac_start
               else (FormatError, NoIdentityMatchedError))
    _expect(_flip(PQ_SEALED, pos, mask), allowed, PQ_IDENTITY)


@FAST
@given(cut=st.integers(0, len(SEALED) - 1))
def test_truncate_anywhere(cut: int) -> None:
    header_end = _header_len(SEALED)
    expected = FormatError if cut < header_end + NONCE_SIZE else IntegrityError
    _expect(SEALED[:cut], (expected,))


@FAST
@given(extra=st.binary(min_size=1, max_size=200))
def test_append_anything(extra: bytes) -> None:
    _expect(SEALED + extra, (IntegrityError,))


@FAST
@given(extra=st.binary(min_size=1, max_size=50).filter(lambda b: b.strip(b" \t\r\n") != b""))
def test_append_to_armor(extra: bytes) -> None:
    _expect(ARMORED + extra, (FormatError,), plain=ARMORED_PLAIN)


@FAST
@given(pos=st.integers(0, len(ARMORED) - 1), mask=st.integers(1, 127))
def test_flip_armor(pos: int, mask: int) -> None:
    flipped = _flip(ARMORED, pos, mask)
    if flipped.strip(b" \t\r\n") == ARMORED.strip(b" \t\r\n"):
        return  # whitespace outside the armor is allowed by the spec
    _expect(flipped, (FormatError, NoIdentityMatchedError, IntegrityError), plain=ARMORED_PLAIN)


@pytest.mark.parametrize(("i", "j"), [(0, 1), (1, 2), (0, 2)])
def test_reorder_chunks(i: int, j: int) -> None:
    start = _header_len(SEALED) + NONCE_SIZE
    payload = SEALED[start:]
    chunks = [payload[k : k + CT_CHUNK] for k in range(0, len(payload), CT_CHUNK)]
    chunks[i], chunks[j] = chunks[j], chunks[i]
    _expect(SEALED[:start] + b"".join(chunks), (IntegrityError,))


def test_drop_middle_chunk_and_duplicate_chunk() -> None:
    start = _header_len(SEALED) + NONCE_SIZE
    payload = SEALED[start:]
    chunks = [payload[k : k + CT_CHUNK] for k in range(0, len(payload), CT_CHUNK)]
    _expect(SEALED[:start] + chunks[0] + chunks[2], (IntegrityError,))
    _expect(SEALED[:start] + chunks[0] + chunks[0] + chunks[1] + chunks[2], (IntegrityError,))


@FAST
@given(tail=st.binary(max_size=400), prefix=st.sampled_from([b"", b"age-encryption.org/v1\n", b"age-encryption.org/v1\n-> X25519 ",
                                                              b"-----BEGIN AGE ENCRYPTED FILE-----\n"]))
def test_garbage_only_raises_qsafe_errors(prefix: bytes, tail: bytes) -> None:
    released, err = _open(prefix + tail)
    assert released == b"" and err is not None  # never decrypts, never crashes with a foreign exception
