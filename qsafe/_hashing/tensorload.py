"""Read a safetensors file once: bounded header, then each tensor's bytes into its own buffer, hashed in the same
pass, compared with the signed manifest, and only then turned into arrays that share that very buffer.

No byte is read twice, so nothing can change between the check and the use; on any mismatch no tensor is
returned (the caller raises). Hashing runs on a second core (:class:`~qsafe._hashing.offload.Offload`) while the
next chunk is read, chunk by chunk, so the bytes are hashed while still in the shared cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qsafe._files import open_regular
from qsafe._hashing.engines import Hasher, new_hasher
from qsafe._hashing.offload import Offload
from qsafe._hashing.safetensors import TensorDigester, TensorInfo, check_structure, parse_header, read_raw_header
from qsafe.errors import (
    FormatError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    UnavailableError,
    UsageError,
)
from qsafe.manifest import SafetensorsDigests

__all__ = ["NUMPY_DTYPES", "check_device", "read_verified", "read_verified_file", "to_arrays"]

# Each 1 MiB chunk is hashed right after it is copied, while it is still in cache (hashing whole tensors later
# re-reads them from RAM and was ~40% slower); the helper thread hashes chunk k while this one reads chunk k+1.
CHUNK = 1 << 20
# A tensor this small is hashed inline: handing it to the helper thread costs more than hashing it.
INLINE = 64 << 10

NUMPY_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16", "U32": "uint32",
    "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}


class _FileCheck:
    """Optional whole-file digest (when the manifest has no tensor digests for this file)."""

    def __init__(self, algorithm: str | None) -> None:
        self.hasher: Hasher | None = new_hasher(algorithm) if algorithm else None

    def update(self, data: memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(data)


def _read_tensor(handle: Any, info: TensorInfo, sinks: list[Any], offload: Offload,
                 progress: Callable[[int], None] | None) -> Any:
    import numpy as np

    # np.empty, not bytearray(n): no memset of memory that readinto fills anyway.
    buffer = np.empty(info.nbytes, dtype=np.uint8)
    view = buffer.data.cast("B")
    done = 0
    while done < info.nbytes:
        n = handle.readinto(view[done : done + CHUNK])
        if not n:
            raise FormatError(f"file ended inside tensor {info.name!r}")
        chunk = view[done : done + n]
        for sink in sinks:
            offload.submit(sink, chunk)
        done += n
        if progress is not None:
            progress(n)
    return buffer


def read_verified(
    path: Path,
    expected: SafetensorsDigests | None,
    *,
    algorithm: str = "sha256",
    file_digest: str | None = None,
    progress: Callable[[int], None] | None = None,
    offload: Offload | None = None,
) -> list[tuple[TensorInfo, Any]]:
    """:func:`read_verified_file` without the header bytes."""
    return read_verified_file(path, expected, algorithm=algorithm, file_digest=file_digest, progress=progress,
                              offload=offload)[1]


def read_verified_file(
    path: Path,
    expected: SafetensorsDigests | None,
    *,
    algorithm: str = "sha256",
    file_digest: str | None = None,
    progress: Callable[[int], None] | None = None,
    offload: Offload | None = None,
) -> tuple[bytes, list[tuple[TensorInfo, Any]]]:
    """Read every tensor of ``path`` once, checking the signed digests of exactly those bytes.

    Each tensor's bytes are read into memory qsafe owns (never an mmap a writer could change) and hashed chunk by
    chunk as they arrive; the arrays built afterwards share that memory.

    Args:
        path: the safetensors file.
        expected: the manifest's header + tensor digests for this file (preferred), or None.
        algorithm: the manifest's hash algorithm.
        file_digest: hex digest of the whole file, used when ``expected`` is None.
        progress: called with the number of bytes read.
        offload: where hash updates run (default: inline, on this thread).

    Returns:
        The raw header (8-byte prefix + JSON, as on disk) and ``(tensor info, uint8 numpy buffer)`` pairs in file
        order: together, every byte of the file.

    Raises:
        FormatError: malformed or out-of-bounds header; the file ends early.
        ModelMismatchError: header, tensor set or any tensor digest differs (every changed tensor named).
    """
    if expected is None and file_digest is None:
        raise FormatError(f"the signed manifest has no digest for {path.name} that can be checked while loading")
    inline = Offload(enabled=False)
    offload = offload or inline
    out: list[tuple[TensorInfo, Any]] = []
    digesters: list[tuple[TensorInfo, TensorDigester]] = []
    with open_regular(path, "signed file", follow_symlinks=False, error=InvalidInputError, buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        raw = read_raw_header(handle, size)
        if expected is not None:  # the raw bytes against their signed digest first: an unsigned header is never parsed
            _check_header_digest(path, raw, expected, algorithm)
        check_structure(raw, start=8)
        header = parse_header(bytes(memoryview(raw)[8:]), size)
        whole = _FileCheck(algorithm if expected is None else None)
        whole.update(memoryview(raw))
        wanted = {}
        if expected is not None:
            _check_header(path, header.tensors, expected)
            wanted = expected.by_name()
        for info in header.tensors:
            # the whole-file hasher must see every chunk in order: always on the helper thread
            sinks: list[Any] = [whole.update] if whole.hasher is not None else []
            tensor_sinks: list[Any] = []
            if expected is not None:
                digester = TensorDigester(info.name, info.dtype, info.shape, info.nbytes, algorithm)
                tensor_sinks.append(digester.update)
                digesters.append((info, digester))
            if sinks:  # the whole-file hasher sees every chunk in order, on the helper thread
                buffer = _read_tensor(handle, info, sinks + tensor_sinks, offload, progress)
            else:  # a tensor's own digest: hashed by whichever thread has less work (both cores finish together)
                where = inline if info.nbytes <= INLINE or offload.inline(info.nbytes) else offload
                buffer = _read_tensor(handle, info, tensor_sinks, where, progress)
            out.append((info, buffer))
        if handle.read(1):  # the header says where the data ends; a file that grew since fstat is not the same
            raise InvalidInputError(f"{path} grew while it was being loaded")
    offload.wait()
    changed = [info.name for info, d in digesters if d.hexdigest() != wanted[info.name].digest]
    if changed:
        raise ModelMismatchError(f"{path.name}: tensor(s) changed since signing: {', '.join(changed)}",
                                 changed=[path.name], changed_tensors={path.name: changed})
    if expected is None and whole.hasher is not None and whole.hasher.digest().hex() != file_digest:
        raise ModelMismatchError(f"{path.name} changed since signing", changed=[path.name])
    return bytes(raw), out


def _check_header_digest(path: Path, raw: bytes | bytearray, expected: SafetensorsDigests, algorithm: str) -> None:
    head = new_hasher(algorithm)
    head.update(raw)
    if head.digest().hex() != expected.header:
        raise ModelMismatchError(f"{path.name}: the safetensors header changed since signing", changed=[path.name])


def _check_header(path: Path, tensors: tuple[TensorInfo, ...], expected: SafetensorsDigests) -> None:
    signed = {t.name: (t.dtype, tuple(t.shape)) for t in expected.tensors}
    found = {t.name: (t.dtype, tuple(t.shape)) for t in tensors}
    if signed != found:  # unreachable unless the header digest collides; kept as a plain check
        raise ModelMismatchError(f"{path.name}: tensor names, dtypes or shapes differ from the signed manifest",
                                 changed=[path.name])


def check_device(device: str) -> None:
    """Fail early (before any byte is read) when a torch device is malformed or absent.

    Raises:
        UsageError: not a torch device string.
        UnavailableError: a CUDA device on a machine where torch sees none.
        MissingDependencyError: torch is not installed.
    """
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("loading onto a device needs torch: pip install 'qsafe[torch]'") from exc
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"not a torch device: {device!r}") from exc
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise UnavailableError(f"device {device} is not available (torch sees {torch.cuda.device_count()} CUDA devices)")


def to_arrays(pairs: list[tuple[TensorInfo, Any]], framework: str, device: str | None) -> dict[str, Any]:
    """Turn verified buffers into arrays (numpy) or tensors (torch, moved to ``device``) that share them.

    Raises:
        MissingDependencyError: torch requested but not installed.
        FormatError: a dtype the framework cannot represent.
    """
    if framework == "torch":
        try:
            import torch
        except ImportError as exc:
            raise MissingDependencyError("loading as torch tensors needs torch: pip install 'qsafe[torch]'") from exc
        out: dict[str, Any] = {}
        for info, buffer in pairs:
            name = _TORCH_DTYPES.get(info.dtype)
            if name is None or not hasattr(torch, name):
                raise FormatError(f"tensor {info.name!r}: dtype {info.dtype} is not supported by this torch")
            t = torch.from_numpy(buffer).view(getattr(torch, name)).reshape(info.shape)
            out[info.name] = t.to(device) if device and device != "cpu" else t
        return out
    arrays: dict[str, Any] = {}
    for info, buffer in pairs:
        if info.dtype not in NUMPY_DTYPES:
            raise FormatError(f"tensor {info.name!r}: dtype {info.dtype} has no numpy equivalent; load with torch")
        arrays[info.name] = buffer.view(NUMPY_DTYPES[info.dtype]).reshape(info.shape)
    return arrays
