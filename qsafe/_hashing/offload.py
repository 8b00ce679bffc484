"""Hash on a second core while the first one reads: a single helper thread runs hash updates in submission order.

hashlib (and blake3) release the GIL for buffers over 2 KiB and ``readinto`` releases it while the kernel copies,
so reading chunk k+1 overlaps hashing chunk k. One helper thread, fed in order, keeps every digest's updates in
order without locks. On a one-core machine updates run inline.

Balancing: the reading thread also copies every byte (page cache -> buffer), which costs about a third of
hashing it (measured on this machine's SHA-NI cores: ~20 ms copy vs ~60 ms SHA-256 for 91 MB). So :meth:`inline`
lets the reader hash some independent digests itself, as long as its share (copy + inline hashing) stays below
the helper's: both cores finish together.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any, Self

__all__ = ["Offload"]

_Update = Callable[[Any], object]

#: Cost of copying a byte relative to hashing it with SHA-256 (measured here: ~0.3).
COPY_COST = 0.3


class Offload:
    """Run ``update(data)`` calls on a helper thread, in order; :meth:`wait` returns when all have run.

    Use as a context manager: leaving it stops the thread (also on errors). The caller must keep ``data`` (a
    memoryview of a buffer it owns) alive and unchanged until :meth:`wait` returned.
    """

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = (os.cpu_count() or 1) > 1 if enabled is None else enabled
        self._queue: queue.SimpleQueue[tuple[_Update | None, Any]] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._reader_work = 0.0  # estimated work of the reading thread (copies + inline hashing)
        self._helper_work = 0.0  # estimated work queued to the helper
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="qsafe-hash", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            update, data = self._queue.get()
            if update is None:
                if data is None:
                    return
                data.set()  # a barrier: every update queued before it has run
                continue
            if self._error is None:
                try:
                    update(data)
                except BaseException as exc:  # noqa: BLE001 - re-raised by wait() in the caller's thread
                    self._error = exc

    def inline(self, nbytes: int) -> bool:
        """Decide where an independent digest of ``nbytes`` (read by the caller) is hashed: True for the caller's
        own thread. Every update of one digest must then go the same way (order within a digest)."""
        self._reader_work += COPY_COST * nbytes
        if self._thread is None or self._reader_work + nbytes <= self._helper_work:
            self._reader_work += nbytes
            return True
        self._helper_work += nbytes
        return False

    def submit(self, update: _Update, data: Any) -> None:
        """Queue ``update(data)`` (or run it now when offloading is off)."""
        if self._thread is None:
            update(data)
        else:
            self._queue.put((update, data))

    def wait(self) -> None:
        """Block until every submitted update has run; re-raise the first error one of them raised."""
        if self._thread is not None:
            done = threading.Event()
            self._queue.put((None, done))
            done.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put((None, None))
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
