"""Streaming client encryption: a ``.safetensors`` update straight into a signed ``.qfl`` file, in constant memory.

Values are read from the file a batch at a time (``BATCH_CIPHERTEXTS`` ciphertexts' worth), clip-checked,
encrypted (in worker processes when the update is large enough to pay for them; TenSEAL holds the GIL) and written
as they come, each ciphertext hashed on the way. The header, whose size does not depend on the digests, is
written first with placeholder digests and rewritten in place once they are known; then the signature is
appended. Memory holds a few batches, whatever the update's size. The file is identical in layout to
:meth:`EncryptedUpdate.to_bytes` (tested: it parses, verifies and aggregates like one).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from qsafe._he import container, fastenc, packing
from qsafe._labels import FL_UPDATE_MAGIC, MLDSA_CONTEXT_FL_UPDATE
from qsafe.errors import FormatError, InvalidInputError, KeyFileError
from qsafe.federated.context import HEContext
from qsafe.federated.update import _packing_json
from qsafe.keys import PrivateKey

__all__ = ["BATCH_CIPHERTEXTS", "StreamedUpdate", "encrypt_file"]

BATCH_CIPHERTEXTS = 32  # 262,144 values per batch in bfv-packed: ~2 MiB of float64, ~2.6 MB of ciphertexts
_PARALLEL_MIN_CIPHERTEXTS = 256  # below ~2M values, starting worker processes costs more than it saves
_NP_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}


@dataclass(frozen=True)
class StreamedUpdate:
    """What :func:`encrypt_file` wrote."""

    client_key_id: str
    round: int
    nonce: str
    values: int
    ciphertexts: int
    bytes: int
    workers: int


def _specs(path: Path) -> tuple[list[packing.TensorSpec], dict[str, Any]]:
    from qsafe._hashing.safetensors import read_header

    with open(path, "rb") as handle:
        _, header = read_header(handle, os.fstat(handle.fileno()).st_size)
    infos = {t.name: t for t in header.tensors}
    if not infos:
        raise InvalidInputError("the update has no tensors")
    specs, offset = [], 0
    for name in sorted(infos):
        info = infos[name]
        if info.dtype not in _NP_DTYPES:
            raise InvalidInputError(f"tensor {name!r} has dtype {info.dtype}; updates must be F16/F32/F64")
        spec = packing.TensorSpec(name, info.shape, info.dtype, offset)
        specs.append(spec)
        offset += spec.count
    return specs, infos


def _batches(path: Path, specs: list[packing.TensorSpec], infos: dict[str, Any], clip: float,
             batch_values: int) -> Iterator[np.ndarray]:
    """Float64 batches of ``batch_values`` values (the last one shorter), clip-checked, read piece by piece."""
    parts: list[np.ndarray] = []
    pending = 0
    with open(path, "rb") as handle:
        for spec in specs:
            info, dtype = infos[spec.name], np.dtype(_NP_DTYPES[spec.dtype])
            position, remaining = info.begin, spec.count
            while remaining:
                take = min(remaining, batch_values - pending)
                handle.seek(position)
                data = handle.read(take * dtype.itemsize)
                if len(data) != take * dtype.itemsize:
                    raise FormatError(f"{path} changed or was truncated while it was read")
                values = np.frombuffer(data, dtype=dtype).astype(np.float64)
                _check(values, spec.name, clip)
                parts.append(values)
                pending += take
                position += take * dtype.itemsize
                remaining -= take
                if pending == batch_values:
                    yield np.concatenate(parts)
                    parts, pending = [], 0
    if pending:
        yield np.concatenate(parts)


def _check(values: np.ndarray, name: str, clip: float) -> None:
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise InvalidInputError(f"tensor {name!r} holds NaN/Inf value(s); refusing to encrypt it",
                                hint="fix the update at the client: NaN/Inf would poison the aggregate")
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak > clip:
        raise InvalidInputError(f"tensor {name!r} has |x| up to {peak:.6g}, beyond the context's clip bound {clip:g}",
                                hint="clip or scale the update so every |x| <= clip, or make a context with a "
                                     "larger --clip")


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__`` from its file: impossible when it came from stdin (``python -``)."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.isfile(path)


def _encrypted(batches: Iterator[np.ndarray], context: HEContext, workers: int) -> Iterator[list[bytes]]:
    """Encrypted batches in order; at most ``2 * workers`` batches in flight."""
    if workers <= 1:
        encryptor = fastenc.BatchEncryptor(context.params, context.tenseal_public(), context.raw_layout())
        try:
            for batch in batches:
                yield encryptor.encrypt(batch)
        finally:
            encryptor.close()
        return
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(workers, fastenc.init_worker, (context.public_bytes(),))
    try:
        inflight: deque[Any] = deque()
        for batch in batches:
            inflight.append(pool.apply_async(fastenc.worker_encrypt, (batch,)))
            if len(inflight) >= 2 * workers:
                yield inflight.popleft().get()
        while inflight:
            yield inflight.popleft().get()
    finally:
        pool.terminate()
        pool.join()


def encrypt_file(source: str | os.PathLike[str], out: BinaryIO, context: HEContext, key: PrivateKey, round: int, *,
                 workers: int | None = None, progress: Callable[[int], None] | None = None) -> StreamedUpdate:
    """Encrypt and sign the update in a ``.safetensors`` file into ``out`` (a seekable binary stream).

    Args:
        source: the update file (F16/F32/F64 tensors; every value finite with ``|x| <= clip``).
        out: where the ``.qfl`` container goes (e.g. an :func:`~qsafe._io.atomic_output` handle).
        context: the public HE context.
        key: the client's ML-DSA signing key.
        round: the aggregation round (>= 0).
        workers: encryption processes (default: up to 2, for updates of at least 256 ciphertexts).
        progress: called with the number of values encrypted, batch by batch.

    Returns:
        What was written.

    Raises:
        InvalidInputError: no tensors, a non-float dtype, NaN/Inf, a value beyond the clip bound, or a bad round
            (nothing usable is left in ``out``: write it through an atomic output).
        FormatError: the file is not a valid safetensors file, or changed while read.
        KeyFileError: the signing key is not post-quantum.
    """
    if not isinstance(round, int) or isinstance(round, bool) or round < 0:
        raise InvalidInputError(f"the round must be a non-negative integer, not {round!r}")
    if not key.public_key().post_quantum:
        raise KeyFileError(f"{key.algorithm} is not post-quantum: federated updates are signed with ML-DSA",
                           hint="make a client key with qsafe keygen (ML-DSA-65 by default)")
    params = context.params
    specs, infos = _specs(Path(source))
    total = packing.total_values(specs)
    chunks = packing.chunk_count(total, params)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if chunks >= _PARALLEL_MIN_CIPHERTEXTS else 1
    if not _can_spawn():
        workers = 1
    nonce = os.urandom(32).hex()
    header = {
        "format_version": 1, "kind": "update", "scheme": params.to_json(),
        "context_fingerprint": context.fingerprint, "tensors": [s.to_json() for s in specs],
        "packing": _packing_json(params.values_per_slot, params.slots, total),
        "ciphertext_sha256": ["0" * 64] * chunks,
        "client_key_id": key.public_key().key_id, "signature_algorithm": key.algorithm,
        "round": round, "nonce": nonce,
    }
    placeholder = container.canonical_json(header)
    start = out.tell()
    out.write(FL_UPDATE_MAGIC + struct.pack(">I", len(placeholder)))
    header_at = out.tell()
    out.write(placeholder + struct.pack(">I", chunks))
    digests: list[str] = []
    batch_values = BATCH_CIPHERTEXTS * params.values_per_ciphertext
    batches = _batches(Path(source), specs, infos, params.clip, batch_values)
    for blobs in _encrypted(batches, context, workers):
        for blob in blobs:
            out.write(struct.pack(">Q", len(blob)))
            out.write(blob)
            digests.append(hashlib.sha256(blob).hexdigest())
        if progress is not None:
            progress(min(len(blobs) * params.values_per_ciphertext, total))
    if len(digests) != chunks:  # cannot happen unless the file changed between header and data
        raise FormatError(f"{source} changed while it was read")
    header["ciphertext_sha256"] = digests
    header_bytes = container.canonical_json(header)
    assert len(header_bytes) == len(placeholder)
    signature = key.sign(FL_UPDATE_MAGIC + header_bytes, MLDSA_CONTEXT_FL_UPDATE)
    end = out.tell()
    out.seek(header_at)
    out.write(header_bytes)
    out.seek(end)
    out.write(struct.pack(">I", len(signature)) + signature)
    return StreamedUpdate(key.public_key().key_id, round, nonce, total, chunks, out.tell() - start, workers)
