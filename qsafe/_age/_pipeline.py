"""Parallel STREAM sealing and opening with reused buffers: reading, ChaCha20-Poly1305 and writing overlap.

cryptography >= 50 releases the GIL inside one-shot AEAD calls on large buffers (measured: a Python thread keeps
running during a 64 MiB ``ChaCha20Poly1305.encrypt``), so batches of 16 chunks (1 MiB) are sealed or opened by a
small thread pool while the calling thread reads ahead (``readinto``) and writes finished batches in order.
Buffers rotate through a fixed ring (``encrypt_into`` / ``decrypt_into``), which halves the CPU time of
allocating fresh objects per chunk. Output is released strictly in order and only after authentication; the
chunk rules (final flag, full-length final chunk, trailing data, truncation) are those of
:func:`qsafe._age._stream.decrypt_chunks`, the sequential reference the CCTV suite also runs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qsafe._age._stream import CHUNK, CT_CHUNK, TAG, chunk_nonce
from qsafe.errors import IntegrityError

BATCH = 16
IN_FLIGHT = 4
WORKERS = max(2, min(4, os.cpu_count() or 2))
Write = Callable[[memoryview], object]


@dataclass
class _Slot:
    src: bytearray
    dst: bytearray
    size: int = 0


@dataclass
class _Done:
    length: int
    error: IntegrityError | None = None
    ended: bool = False


def _fill(src: BinaryIO, buf: bytearray) -> int:
    """Fill ``buf`` from ``src`` (looping over short reads); fewer bytes only at end of input."""
    view, got = memoryview(buf), 0
    reader = getattr(src, "readinto", None)
    while got < len(buf):
        if reader is not None:
            n = reader(view[got:]) or 0
        else:
            data = src.read(len(buf) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got


def _seal(aead: ChaCha20Poly1305, counter: int, slot: _Slot, at_eof: bool) -> _Done:
    src, dst = memoryview(slot.src), memoryview(slot.dst)
    starts = range(0, max(slot.size, 1), CHUNK)
    out = 0
    for k, start in enumerate(starts):
        n = min(CHUNK, slot.size - start)
        last = at_eof and k == len(starts) - 1
        aead.encrypt_into(chunk_nonce(counter + k, last), src[start : start + n], None, dst[out : out + n + TAG])
        out += n + TAG
    return _Done(out)


def _open_one(aead: ChaCha20Poly1305, counter: int, piece: memoryview, out: memoryview) -> bool:
    # A full-length chunk may be the final one: try it as non-final first, then as final (as age does).
    short = len(piece) < CT_CHUNK
    for last in (True,) if short else (False, True):
        try:
            aead.decrypt_into(chunk_nonce(counter, last), piece, None, out)
            return last
        except InvalidTag:
            continue
    raise IntegrityError(f"payload chunk {counter} failed authentication: the file was modified or truncated")


def _open(aead: ChaCha20Poly1305, counter: int, slot: _Slot, at_eof: bool) -> _Done:
    src, dst = memoryview(slot.src), memoryview(slot.dst)
    starts = range(0, slot.size, CT_CHUNK)
    out = 0
    for k, start in enumerate(starts):
        piece = src[start : min(start + CT_CHUNK, slot.size)]
        if len(piece) == TAG and len(piece) < CT_CHUNK and counter + k > 0:
            return _Done(out, IntegrityError("the final payload chunk is empty although the payload is not"))
        if len(piece) < TAG:
            return _Done(out, IntegrityError("the age payload is truncated (a chunk is shorter than its tag)"))
        try:
            last = _open_one(aead, counter + k, piece, dst[out : out + len(piece) - TAG])
        except IntegrityError as err:
            return _Done(out, err)
        out += len(piece) - TAG
        if last:
            if not (at_eof and k == len(starts) - 1):
                return _Done(out, IntegrityError("unexpected data after the final payload chunk"))
            return _Done(out, ended=True)
    return _Done(out)


def _pump(src: BinaryIO, write: Write, in_size: int, out_size: int,
          work: Callable[[int, _Slot, bool], _Done], advance: Callable[[int], None] | None) -> _Done:
    """Read batches into a ring of slots, run ``work`` on a pool, write results in order; return the last."""
    ring = [_Slot(bytearray(in_size), bytearray(out_size)) for _ in range(IN_FLIGHT + 2)]
    pending: deque[tuple[_Slot, Future[_Done]]] = deque()
    last = _Done(0)

    def finish(slot: _Slot, future: Future[_Done]) -> _Done:
        done = future.result()
        write(memoryview(slot.dst)[: done.length])
        if done.error is not None:
            raise done.error
        return done

    ring[0].size = _fill(src, ring[0].src)
    if ring[0].size < in_size:  # the whole payload fits one batch: no threads for small files
        done = work(0, ring[0], True)
        if advance is not None:
            advance(ring[0].size)
        write(memoryview(ring[0].dst)[: done.length])
        if done.error is not None:
            raise done.error
        return done
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="qsafe-age") as pool:
        try:
            index = 0
            while True:
                slot, following = ring[index % len(ring)], ring[(index + 1) % len(ring)]
                following.size = _fill(src, following.src) if slot.size == in_size else 0
                at_eof = following.size == 0
                if advance is not None:
                    advance(slot.size)
                pending.append((slot, pool.submit(work, index * BATCH, slot, at_eof)))
                if len(pending) >= IN_FLIGHT:
                    last = finish(*pending.popleft())
                if at_eof:
                    break
                index += 1
            while pending:
                last = finish(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()
    return last


def seal_to(src: BinaryIO, key: bytes, write: Write, *, advance: Callable[[int], None] | None = None) -> None:
    """Seal the plaintext read from ``src`` as a STREAM payload, passing the ciphertext to ``write`` in order."""
    aead = ChaCha20Poly1305(key)
    _pump(src, write, BATCH * CHUNK, BATCH * CT_CHUNK, lambda c, s, e: _seal(aead, c, s, e), advance)


def unseal_to(src: BinaryIO, key: bytes, write: Write, *, advance: Callable[[int], None] | None = None) -> None:
    """Open the STREAM payload read from ``src``, passing only authenticated plaintext to ``write``, in order.

    Raises:
        IntegrityError: a chunk fails authentication, the payload is truncated or has data after its final chunk.
    """
    aead = ChaCha20Poly1305(key)
    last = _pump(src, write, BATCH * CT_CHUNK, BATCH * CHUNK, lambda c, s, e: _open(aead, c, s, e), advance)
    if not last.ended:
        raise IntegrityError("the age payload is truncated: it ends without a final chunk")
