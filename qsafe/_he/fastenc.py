"""Per-batch encryption into qsafe's wire form, in this process or in worker processes.

For ``bfv-packed`` the batch is encrypted through SEAL's own API (``tenseal.sealapi``: about half the cost of
building a TenSEAL vector, measured), and each ciphertext is serialized once by SEAL and byte-packed (SEAL's
Python binding offers no view of a ciphertext's coefficients, so one serialization remains; under one data prime
of 48-60 bits it hardly compresses and costs little). Parameter set v2 puts the values in plaintext coefficients,
loaded from bytes (:class:`qsafe._he.sealio.PlainCodec`); v1 uses SEAL's batch encoder. ``ckks`` goes through
TenSEAL's vectors as before. TenSEAL holds the GIL, so extra cores are used through processes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qsafe._he import packing, raw, sealio
from qsafe._he.params import SchemeParams

__all__ = ["BatchEncryptor", "init_worker", "worker_encrypt"]


class BatchEncryptor:
    """Encrypts batches of (clip-checked) float64 values under one public context."""

    def __init__(self, params: SchemeParams, ts_ctx: Any, layout: raw.RawLayout) -> None:
        self.params, self.ts_ctx, self.layout = params, ts_ctx, layout
        self._spool: sealio.Spool | None = None
        if params.name == "bfv-packed":
            seal = sealio.seal_module()
            context = ts_ctx.seal_context().data
            self._encryptor = seal.Encryptor(context, ts_ctx.public_key().data)
            self._plain = seal.Plaintext()
            self._cipher = seal.Ciphertext(context)
            self._spool = sealio.Spool()
            if params.batching:  # v1: values in batching slots
                self._encoder = seal.BatchEncoder(context)
            else:  # v2: values in plaintext coefficients, loaded from bytes
                self._codec = sealio.PlainCodec(context, params.poly_modulus_degree, self._spool)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def __del__(self) -> None:
        self.close()

    def encrypt(self, values: np.ndarray) -> list[bytes]:
        """Wire-form ciphertexts of ``values`` (a whole number of ciphertexts' worth, except the last batch)."""
        if self.params.name != "bfv-packed":
            from qsafe._he import cipher

            return cipher.encrypt_values(values, self.params, self.ts_ctx, self.layout)
        assert self._spool is not None
        rows = packing.pack(packing.quantize(values, self.params), self.params)
        if not self.params.batching:  # signed lanes -> residues mod t, as SEAL's plaintext coefficients hold them
            rows = np.where(rows < 0, rows + self.params.plain_modulus, rows).astype(np.uint64)
        out = []
        for row in rows:
            if self.params.batching:
                self._encoder.encode(row.tolist(), self._plain)
            else:
                self._codec.load(self._plain, row)
            self._encryptor.encrypt(self._plain, self._cipher)
            out.append(raw.pack_seal(self._spool.save(self._cipher), self.layout))
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
