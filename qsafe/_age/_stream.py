"""The age STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks, nonce = 11-byte counter || last-chunk flag.

:func:`decrypt_chunks` is the sequential reference (a generator of authenticated chunks, used where a readable
plaintext stream is needed, e.g. directory extraction); :mod:`qsafe._age._pipeline` is the parallel path for
files. Both release the same plaintext and fail the same way on every CCTV vector.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qsafe._age._format import hkdf_sha256
from qsafe.errors import FormatError, IntegrityError

CHUNK = 64 * 1024
TAG = 16
CT_CHUNK = CHUNK + TAG
NONCE_SIZE = 16
_MAX_COUNTER = 1 << 88


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """The STREAM key: HKDF-SHA-256(file key, salt = payload nonce, info = "payload")."""
    return hkdf_sha256(file_key, nonce, b"payload")


def chunk_nonce(counter: int, last: bool) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce of chunk ``counter``."""
    if counter >= _MAX_COUNTER:
        raise IntegrityError("the STREAM counter overflowed")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def read_exact(src: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads (pipes); fewer only at end of input."""
    parts: list[bytes] = []
    left = size
    while left:
        data = src.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def read_nonce(src: BinaryIO) -> bytes:
    """Read the 16-byte payload nonce that follows the header.

    Raises:
        FormatError: the file ends before the nonce is complete.
    """
    nonce = read_exact(src, NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise FormatError("the age file ends before the payload nonce")
    return nonce


def open_chunk(aead: ChaCha20Poly1305, counter: int, chunk: bytes, short: bool) -> tuple[bytes, bool]:
    # A full-length chunk may be the final one: try it as non-final first, then as final (as age does).
    for last in ((True,) if short else (False, True)):
        try:
            return aead.decrypt(chunk_nonce(counter, last), chunk, None), last
        except InvalidTag:
            continue
    raise IntegrityError(f"payload chunk {counter} failed authentication: the file was modified or truncated")


def decrypt_chunks(src: BinaryIO, key: bytes) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks of the STREAM read from ``src``.

    Every yielded chunk passed its tag. The plaintext released before an error is exactly what age releases
    (the CCTV suite checks it), and an error always follows a truncated or extended stream.

    Raises:
        IntegrityError: a chunk fails authentication, the stream ends without a final chunk, has data after
            its final chunk, or its final chunk is empty although the payload is not.
    """
    aead = ChaCha20Poly1305(key)
    counter = 0
    while True:
        chunk = read_exact(src, CT_CHUNK)
        short = len(chunk) < CT_CHUNK
        if not chunk:
            raise IntegrityError("the age payload is truncated: it ends without a final chunk")
        if short and len(chunk) == TAG and counter > 0:
            raise IntegrityError("the final payload chunk is empty although the payload is not")
        if len(chunk) < TAG:
            raise IntegrityError("the age payload is truncated (a chunk is shorter than its tag)")
        plain, last = open_chunk(aead, counter, chunk, short)
        yield plain
        if last:
            if src.read(1):
                raise IntegrityError("unexpected data after the final payload chunk")
            return
        counter += 1


def new_nonce() -> bytes:
    """A fresh random payload nonce."""
    return os.urandom(NONCE_SIZE)
