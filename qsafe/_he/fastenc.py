"""Per-batch encryption into qsafe's wire form, in this process or in worker processes.

For ``bfv-packed`` the batch is encoded and encrypted through SEAL's own API (``tenseal.sealapi``: about half the
cost of building a TenSEAL vector, measured), and each ciphertext is serialized once by SEAL and byte-packed.
(SEAL's Python binding offers no view of a ciphertext's coefficients, so one serialization remains.) ``ckks``
goes through TenSEAL's vectors as before. TenSEAL holds the GIL, so extra cores are used through processes.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from qsafe._he import packing, raw
from qsafe._he.backend import tenseal
from qsafe._he.params import SchemeParams

__all__ = ["BatchEncryptor", "init_worker", "worker_encrypt"]


class BatchEncryptor:
    """Encrypts batches of (clip-checked) float64 values under one public context."""

    def __init__(self, params: SchemeParams, ts_ctx: Any, layout: raw.RawLayout) -> None:
        self.params, self.ts_ctx, self.layout = params, ts_ctx, layout
        if params.name == "bfv-packed":
            import tenseal.sealapi as seal

            tenseal()
            context = ts_ctx.seal_context().data
            self._encryptor = seal.Encryptor(context, ts_ctx.public_key().data)
            self._encoder = seal.BatchEncoder(context)
            self._plain = seal.Plaintext()
            self._cipher = seal.Ciphertext(context)
            # SEAL's binding saves only to a path: an unlinked file in tmpfs, reached through /proc, so nothing is
            # left behind even when a worker process is killed
            shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._fd, name = tempfile.mkstemp(prefix="qsafe-ct-", dir=shm)
            os.unlink(name)
            self._spool = f"/proc/self/fd/{self._fd}"

    def close(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    def encrypt(self, values: np.ndarray) -> list[bytes]:
        """Wire-form ciphertexts of ``values`` (a whole number of ciphertexts' worth, except the last batch)."""
        if self.params.name != "bfv-packed":
            from qsafe._he import cipher

            return cipher.encrypt_values(values, self.params, self.ts_ctx, self.layout)
        out = []
        for row in packing.pack(packing.quantize(values, self.params), self.params):
            self._encoder.encode(row.tolist(), self._plain)
            self._encryptor.encrypt(self._plain, self._cipher)
            self._cipher.save(self._spool)
            out.append(raw.pack_seal(os.pread(self._fd, os.fstat(self._fd).st_size, 0), self.layout))
        return out


_WORKER: BatchEncryptor | None = None


def init_worker(public_file: bytes) -> None:
    """Process-pool initializer: load the public context once per worker."""
    global _WORKER
    from qsafe.federated.context import HEContext

    ctx = HEContext.from_bytes(public_file)
    _WORKER = BatchEncryptor(ctx.params, ctx.tenseal_public(), ctx.raw_layout())


def worker_encrypt(values: np.ndarray) -> list[bytes]:
    """Process-pool task: encrypt one batch with this worker's context."""
    assert _WORKER is not None
    return _WORKER.encrypt(values)
