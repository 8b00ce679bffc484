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

import io
import mmap
import os
import signal
import stat
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from queue import SimpleQueue
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
    src: memoryview
    dst: memoryview
    size: int = 0


@dataclass
class _Done:
    length: int
    error: IntegrityError | None = None
    ended: bool = False


def _buffer(size: int, skew: int = 0) -> memoryview:
    # Page-aligned anonymous memory: reading a file into a buffer misaligned to the cache line (where malloc
    # puts a bytearray's data) made the kernel's copy 3-4x slower here (0.18 vs 0.05 s CPU per 256 MiB), and
    # so does writing an aligned buffer at a misaligned file offset: ``skew`` (the output's offset mod 64)
    # keeps buffer and file aligned alike.
    return memoryview(mmap.mmap(-1, size + 64))[skew % 64 : skew % 64 + size]


class _Task:
    """One batch for the pool. Whoever claims it first runs it: a worker, or the waiting thread itself.

    On a loaded machine a worker may not be scheduled for a while; the thread that needs the result then runs
    the batch itself instead of sleeping (and its wake-up latency) — parallel when a core is free, never slower
    than sequential when none is.
    """

    __slots__ = ("claim", "done", "error", "result", "run")

    def __init__(self, run: Callable[[], _Done]) -> None:
        self.run = run
        self.result = _Done(0)
        self.error: BaseException | None = None
        self.claim = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()

    def execute(self, cancelled: bool = False) -> None:
        """Run the batch if nobody claimed it yet (skip it if ``cancelled``); errors go to :meth:`wait`."""
        if not self.claim.acquire(blocking=False):
            return
        try:
            if not cancelled:
                self.result = self.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the waiting thread by _Task.wait
            self.error = exc
        finally:
            self.done.release()

    def wait(self) -> _Done:
        self.execute()
        with self.done:
            if self.error is not None:
                raise self.error
            return self.result


# Signals that end a command (the CLI turns them into exits 130/143/129 after its clean-up).
_ENDING_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _start_deaf(threads: list[threading.Thread]) -> None:
    """Start ``threads`` with the ending signals blocked in them.

    The kernel hands a process-directed signal to any thread that does not block it. Delivered to a worker, Python
    only sets a flag, while the thread that reads the input may sit in a ``read`` of a pipe whose writer is still
    open (``producer | qsafe decrypt``, then ``kill`` of qsafe alone): that read is never interrupted and the
    command would hang instead of exiting 143. Blocked in the workers, the signal goes to the reading thread,
    interrupts its ``read`` (EINTR) and runs the handler there.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING_SIGNALS)
    try:
        for thread in threads:
            thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Pool:
    """A few worker threads fed by a queue (concurrent.futures costs ~20 ms of imports, logging included)."""

    def __init__(self, workers: int) -> None:
        self.tasks: SimpleQueue[_Task | None] = SimpleQueue()
        self.cancelled = False
        self.threads = [threading.Thread(target=self._loop, name=f"qsafe-age-{i}", daemon=True)
                        for i in range(workers)]
        _start_deaf(self.threads)

    def _loop(self) -> None:
        while (task := self.tasks.get()) is not None:
            task.execute(self.cancelled)

    def submit(self, run: Callable[[], _Done]) -> _Task:
        task = _Task(run)
        self.tasks.put(task)
        return task

    def close(self) -> None:
        """Stop the workers (skipping queued batches after a failure) and wait for them."""
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()


def _may_block(src: BinaryIO) -> bool:
    """Whether ``src`` is an unbuffered file (alone or behind the armor sniffer's prefix) whose reads can wait for
    another process (a pipe, socket or terminal), not only for a disk. Only such a file is read on a helper
    thread: it holds no lock that the interpreter's shutdown would wait for (a buffered reader does)."""
    raw = getattr(src, "rest", src)
    if not isinstance(raw, io.FileIO):
        return False
    try:
        mode = os.fstat(raw.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISBLK(mode))


def _fill_interruptibly(src: BinaryIO, buf: memoryview) -> int:
    """:func:`_fill`, on a helper thread when ``src`` may block, while this thread waits in short steps.

    A signal that arrives just before a ``read`` system call starts (the thread preempted between Python's check for
    pending signals and the call) does not interrupt it: reading a pipe whose writer has paused, the command would
    never run its SIGINT/SIGTERM handler. Waiting here in 0.2 s steps, the handler runs within 0.2 s whatever the
    writer does; the helper thread (a daemon, ending signals blocked) is abandoned if the command is interrupted.
    """
    if not _may_block(src):
        return _fill(src, buf)
    result: list[int | BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            result.append(_fill(src, buf))
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the waiting thread
            result.append(exc)
        finally:
            finished.set()

    _start_deaf([threading.Thread(target=run, name="qsafe-age-read", daemon=True)])
    while not finished.wait(0.2):
        pass
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got


def _fill(src: BinaryIO, buf: memoryview) -> int:
    """Fill ``buf`` from ``src`` (looping over short reads); fewer bytes only at end of input."""
    view, got = memoryview(buf), 0
    # One system call per readinto1: a buffered readinto loops in C until ``buf`` is full, so a signal arriving
    # between two of its reads would wait for the writer of a pipe (forever, if it stopped) before its handler runs.
    reader = getattr(src, "readinto1", None) or getattr(src, "readinto", None)
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
          work: Callable[[int, _Slot, bool], _Done], advance: Callable[[int], None] | None, skew: int) -> _Done:
    """Read batches into a ring of slots, run ``work`` on a pool, write results in order; return the last."""
    first = _Slot(_buffer(in_size), _buffer(out_size, skew))
    first.size = _fill_interruptibly(src, first.src)
    if first.size < in_size:  # the whole payload fits one batch: no threads for small files
        done = work(0, first, True)
        if advance is not None:
            advance(first.size)
        write(first.dst[: done.length])
        if done.error is not None:
            raise done.error
        return done
    ring = [first, *(_Slot(_buffer(in_size), _buffer(out_size, skew)) for _ in range(IN_FLIGHT + 1))]
    pool = _Pool(WORKERS)
    try:
        return _drive(src, write, in_size, ring, pool, work, advance)
    except BaseException:
        pool.cancelled = True
        raise
    finally:
        pool.close()


def _drive(src: BinaryIO, write: Write, in_size: int, ring: list[_Slot], pool: _Pool,
           work: Callable[[int, _Slot, bool], _Done], advance: Callable[[int], None] | None) -> _Done:
    pending: deque[tuple[_Slot, _Task]] = deque()
    last = _Done(0)

    def finish(slot: _Slot, task: _Task) -> _Done:
        done = task.wait()
        write(slot.dst[: done.length])
        if done.error is not None:
            raise done.error
        return done

    index = 0
    while True:
        slot, following = ring[index % len(ring)], ring[(index + 1) % len(ring)]
        following.size = _fill_interruptibly(src, following.src) if slot.size == in_size else 0
        at_eof = following.size == 0
        if advance is not None:
            advance(slot.size)
        pending.append((slot, pool.submit(partial(work, index * BATCH, slot, at_eof))))
        if len(pending) >= IN_FLIGHT:
            last = finish(*pending.popleft())
        if at_eof:
            break
        index += 1
    while pending:
        last = finish(*pending.popleft())
    return last


def seal_to(src: BinaryIO, key: bytes, write: Write, *, advance: Callable[[int], None] | None = None,
            offset: int = 0) -> None:
    """Seal the plaintext read from ``src`` as a STREAM payload, passing the ciphertext to ``write`` in order.

    ``offset`` is where the payload starts in the output (header and nonce before it); it only aligns buffers.
    """
    aead = ChaCha20Poly1305(key)
    _pump(src, write, BATCH * CHUNK, BATCH * CT_CHUNK, lambda c, s, e: _seal(aead, c, s, e), advance, offset)


def unseal_to(src: BinaryIO, key: bytes, write: Write, *, advance: Callable[[int], None] | None = None) -> None:
    """Open the STREAM payload read from ``src``, passing only authenticated plaintext to ``write``, in order.

    Raises:
        IntegrityError: a chunk fails authentication, the payload is truncated or has data after its final chunk.
    """
    aead = ChaCha20Poly1305(key)
    last = _pump(src, write, BATCH * CT_CHUNK, BATCH * CHUNK, lambda c, s, e: _open(aead, c, s, e), advance, 0)
    if not last.ended:
        raise IntegrityError("the age payload is truncated: it ends without a final chunk")
