"""The parallel STREAM pipeline at batch boundaries agrees with the sequential reference, both directions."""

from __future__ import annotations

import io
import os

import pytest

from qsafe._age._core import decrypt_to, read_age, write_age
from qsafe._age._keys import generate
from qsafe._age._pipeline import BATCH, IN_FLIGHT
from qsafe._age._stream import CHUNK, CT_CHUNK, NONCE_SIZE
from qsafe.errors import IntegrityError

IDENTITY = generate("x25519")
BATCH_BYTES = BATCH * CHUNK
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, BATCH_BYTES, BATCH_BYTES + 1, (IN_FLIGHT + 2) * BATCH_BYTES + 17]


def _seal(plain: bytes) -> bytes:
    out = io.BytesIO()
    write_age(io.BytesIO(plain), out, [IDENTITY.recipient()])
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_both_paths(size: int) -> None:
    plain = os.urandom(size)
    sealed = _seal(plain)
    chunks = max(1, -(-size // CHUNK))
    header_len = sealed.index(b"\n", sealed.index(b"\n--- ") + 1) + 1
    assert len(sealed) == header_len + NONCE_SIZE + size + 16 * chunks
    out = bytearray()
    decrypt_to(io.BytesIO(sealed), [IDENTITY], out.extend)
    assert bytes(out) == plain
    assert b"".join(read_age(io.BytesIO(sealed), [IDENTITY])) == plain


@pytest.mark.parametrize("chunks_kept", [BATCH, 2 * BATCH, BATCH - 1])
def test_truncation_at_batch_boundaries(chunks_kept: int) -> None:
    sealed = _seal(os.urandom(3 * BATCH_BYTES + 5))
    header_len = sealed.index(b"\n", sealed.index(b"\n--- ") + 1) + 1
    cut = sealed[: header_len + NONCE_SIZE + chunks_kept * CT_CHUNK]
    released = bytearray()
    with pytest.raises(IntegrityError, match="truncated"):
        decrypt_to(io.BytesIO(cut), [IDENTITY], released.extend)
    assert len(released) == chunks_kept * CHUNK  # authenticated chunks only, exactly as age releases them
