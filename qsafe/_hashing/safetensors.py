"""A bounded safetensors header parser and the tensor digest, written from the format description.

Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object, optionally right-padded with
spaces), then the data area. Each tensor entry is ``{"dtype", "shape", "data_offsets": [begin, end]}`` with
offsets relative to the data area. Nothing here unpickles or executes anything; every number is checked before
it is used: N is capped, offsets are in range, sorted, non-overlapping, and cover the data area exactly, and the
byte length matches dtype x shape where the dtype is known.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsafe import _json, _limits
from qsafe._files import Readable, open_regular
from qsafe._hashing import engines
from qsafe._hashing.engines import Hasher, Sink, new_hasher
from qsafe._labels import SAFETENSORS_TENSOR_DIGEST_LABEL
from qsafe.errors import FormatError, InvalidInputError

# One set of limits for sign, verify, load and inspect (qsafe/_limits.py; listed in docs/security.md).
MAX_HEADER_BYTES = _limits.SAFETENSORS_MAX_HEADER_BYTES
MAX_NDIM = _limits.SAFETENSORS_MAX_NDIM
MAX_TENSORS = _limits.SAFETENSORS_MAX_TENSORS
_DTYPE_RE = re.compile(r"[A-Z][A-Z0-9_]{0,15}")  # fullmatch: `$` would accept "F32\n"

# Bits per element of the dtypes safetensors defines; an unknown (future) dtype skips the size check only.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file: where its bytes are and what they mean."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offset of the first data byte
    end: int  # absolute file offset one past the last data byte

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked safetensors header. ``tensors`` are in file order (by offset)."""

    header_len: int  # N: the JSON length (the header occupies bytes [0, 8 + N))
    file_size: int
    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]

    @property
    def data_start(self) -> int:
        return 8 + self.header_len


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 63:
        raise FormatError(f"safetensors header: {what} is not a non-negative 64-bit integer")
    return value


def _check_entry(name: str, entry: Any, data_start: int, data_len: int) -> TensorInfo:
    if not name or len(name.encode("utf-8")) > _limits.SAFETENSORS_MAX_NAME_BYTES:
        raise FormatError("safetensors header: empty or oversized tensor name")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(f"safetensors header: tensor {name!r} must have exactly dtype, shape, data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or not _DTYPE_RE.fullmatch(dtype):
        raise FormatError(f"safetensors header: tensor {name!r} has an invalid dtype")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise FormatError(f"safetensors header: tensor {name!r} has an invalid shape")
    dims = tuple(_int(d, f"a dimension of {name!r}") for d in shape)
    if not isinstance(offsets, list) or len(offsets) != 2:
        raise FormatError(f"safetensors header: tensor {name!r} needs data_offsets [begin, end]")
    begin, end = (_int(o, f"an offset of {name!r}") for o in offsets)
    if begin > end or end > data_len:
        raise FormatError(f"safetensors header: tensor {name!r} offsets [{begin}, {end}] out of range 0..{data_len}")
    bits = DTYPE_BITS.get(dtype)
    if bits is not None:
        nbits = math.prod(dims) * bits
        if nbits % 8 or nbits // 8 != end - begin:
            raise FormatError(f"safetensors header: tensor {name!r} has {end - begin} bytes, {dtype}{list(dims)} needs {nbits / 8:g}")
    return TensorInfo(name, dtype, dims, data_start + begin, data_start + end)


def check_structure(raw: bytes | bytearray, *, tensors: int = MAX_TENSORS, start: int = 0) -> None:
    """Refuse, before parsing, a header whose JSON could not describe at most ``SAFETENSORS_MAX_TENSORS`` tensors
    and ``SAFETENSORS_MAX_METADATA_ENTRIES`` metadata entries: parsing costs memory per object, list, string and
    number, so those are counted first (C-speed byte counts; characters inside strings only make it stricter).

    Raises:
        FormatError: more objects, lists, strings or numbers than a header within the limits can hold.
    """
    meta, ndim = _limits.SAFETENSORS_MAX_METADATA_ENTRIES, MAX_NDIM
    bounds = (  # per tensor: 1 object, 2 lists, 5 strings, ndim + 2 numbers; metadata: 1 object, 2 strings each
        (b"{", tensors + 2, "objects"), (b"[", 2 * tensors, "lists"),
        (b'"', 2 * (5 * tensors + 2 * meta + 1), "string quotes"), (b",", (ndim + 6) * tensors + meta + 1, "commas"),
    )
    for char, bound, what in bounds:
        count = raw.count(char, start)
        if count > bound:
            raise FormatError(
                f"safetensors header has {count} {what}, more than a header of at most {tensors} tensors and "
                f"{meta} metadata entries can have; refused before parsing",
                hint="this is not a safetensors file qsafe accepts (limits: docs/security.md)")


def parse_header(raw: bytes, file_size: int) -> SafetensorsHeader:
    """Check a header given its JSON bytes (without the 8-byte prefix) and the file size.

    Raises:
        FormatError: anything out of bounds, malformed, overlapping or not covering the data area.
    """
    header_len = len(raw)
    if not raw.startswith(b"{"):
        raise FormatError("safetensors header does not start with '{'")
    check_structure(raw)
    # duplicate keys, NaN, huge numbers, deep nesting and lone surrogates (tensor names!) are refused here
    doc = _json.loads(raw, "safetensors header", max_bytes=MAX_HEADER_BYTES)
    if not isinstance(doc, dict):
        raise FormatError("safetensors header is not a JSON object")
    metadata = doc.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("safetensors __metadata__ must map strings to strings")
    if len(metadata) > _limits.SAFETENSORS_MAX_METADATA_ENTRIES:
        raise FormatError(f"safetensors __metadata__ has more than {_limits.SAFETENSORS_MAX_METADATA_ENTRIES} entries")
    if len(doc) > MAX_TENSORS:
        raise FormatError(f"safetensors header lists more than {MAX_TENSORS} tensors")
    data_start = 8 + header_len
    data_len = file_size - data_start
    tensors = sorted(
        (_check_entry(name, entry, data_start, data_len) for name, entry in doc.items()),
        key=lambda t: (t.begin, t.end, t.name),
    )
    position = data_start
    for t in tensors:
        if t.begin != position:
            kind = "overlaps the previous tensor" if t.begin < position else "leaves a gap before it"
            raise FormatError(f"safetensors header: tensor {t.name!r} {kind}")
        position = t.end
    if position != file_size:
        raise FormatError(f"safetensors data area has {file_size - position} bytes no tensor covers")
    return SafetensorsHeader(header_len, file_size, tuple(tensors), dict(metadata))


def read_raw_header(handle: io.BufferedIOBase | io.RawIOBase, file_size: int) -> bytearray:
    """Read the raw header (8-byte prefix + JSON) of an open safetensors file without parsing it: the loader
    and verify compare it with its signed digest first, so an unsigned header is never parsed.

    Raises:
        FormatError: truncated or oversized header.
    """
    prefix = handle.read(8)
    if len(prefix) != 8:
        raise FormatError("file too short for a safetensors header")
    (n,) = struct.unpack("<Q", prefix)
    if n > MAX_HEADER_BYTES:
        raise FormatError(f"safetensors header length {n} exceeds the {MAX_HEADER_BYTES}-byte cap")
    if 8 + n > file_size:
        raise FormatError(f"safetensors header length {n} runs past the end of the file")
    raw = bytearray(8 + n)  # one buffer: the header is never copied while it is hashed and checked
    raw[:8] = prefix
    view = memoryview(raw)
    done = 8
    while done < 8 + n:
        got = handle.readinto(view[done:])
        if not got:
            raise FormatError("safetensors header truncated")
        done += got
    return raw


def read_header(handle: io.BufferedIOBase | io.RawIOBase, file_size: int) -> tuple[bytes, SafetensorsHeader]:
    """Read and check the header of an open safetensors file.

    Returns:
        The raw header bytes (8-byte prefix + JSON, exactly as on disk) and the checked header.

    Raises:
        FormatError: truncated, oversized or malformed header.
    """
    raw = read_raw_header(handle, file_size)
    check_structure(raw, start=8)  # before any copy or parse of a header that could not be within the limits
    return bytes(raw), parse_header(bytes(memoryview(raw)[8:]), file_size)


def tensor_prefix(name: str, dtype: str, shape: Iterable[int], nbytes: int) -> bytes:
    """The bytes hashed before a tensor's data (see :func:`qsafe.manifest.tensor_digest`)."""
    name_b, dtype_b, dims = name.encode("utf-8"), dtype.encode("ascii"), list(shape)
    return b"".join(
        [
            SAFETENSORS_TENSOR_DIGEST_LABEL,
            struct.pack("<Q", len(name_b)), name_b,
            struct.pack("<Q", len(dtype_b)), dtype_b,
            struct.pack("<Q", len(dims)), *(struct.pack("<Q", d) for d in dims),
            struct.pack("<Q", nbytes),
        ]
    )


class TensorDigester:
    """Streaming tensor digest: feed the tensor's data bytes in any chunking, then :meth:`hexdigest`."""

    def __init__(self, name: str, dtype: str, shape: Iterable[int], nbytes: int, algorithm: str = "sha256"):
        self._hasher: Hasher = new_hasher(algorithm)
        self._hasher.update(tensor_prefix(name, dtype, shape, nbytes))
        self._left = nbytes

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next data bytes.

        Raises:
            FormatError: more bytes than the declared ``nbytes``.
        """
        n = memoryview(data).nbytes
        if n > self._left:
            raise FormatError("more tensor bytes than the header declares")
        self._left -= n
        self._hasher.update(data)

    def hexdigest(self) -> str:
        """The digest in hex.

        Raises:
            FormatError: fewer bytes were fed than declared.
        """
        if self._left:
            raise FormatError(f"tensor data is {self._left} bytes short")
        return self._hasher.digest().hex()


@dataclass(frozen=True)
class FileTensorDigests:
    """Result of one pass over a safetensors file."""

    header_digest: str
    tensors: tuple[tuple[TensorInfo, str], ...]
    file_digest: bytes | None


class _Tiling:
    """Consecutive byte ranges ``[start, end)`` of a file, each with its own sink, fed by in-order chunks.

    A chunk is cut at range boundaries, so one read serves every range it overlaps (a tensor spanning many
    chunks, or many small tensors inside one chunk). Empty ranges are passed over without a call.
    """

    def __init__(self, ranges: list[tuple[int, int, Sink]]):
        self._ranges = ranges
        self._next = 0

    def feed(self, offset: int, chunk: memoryview) -> None:
        stop = offset + len(chunk)
        while self._next < len(self._ranges):
            begin, end, sink = self._ranges[self._next]
            lo, hi = max(begin, offset), min(end, stop)
            if lo < hi:
                sink(chunk[lo - offset : hi - offset])
            if end > stop:
                return
            self._next += 1


def _stream_data(
    handle: Readable, path: Path, start: int, end: int, feeds: list[_Tiling],
    progress: Callable[[int], None] | None,
) -> None:
    """Read ``[start, end)`` from ``handle`` (positioned at ``start``) once, in bounded chunks, into every tiling."""
    buf = bytearray(min(engines.READ_CHUNK, max(end - start, 1)))
    view = memoryview(buf)
    offset = start
    while offset < end:
        n = handle.readinto(view[: min(len(buf), end - offset)])
        if not n:
            raise InvalidInputError(f"{path} shrank while it was being hashed")
        chunk = view[:n]
        for tiling in feeds:
            tiling.feed(offset, chunk)
        offset += n
        if progress is not None:
            progress(n)


def digest_safetensors(
    path: Path, algorithm: str, *, whole_file: bool = False, progress: Callable[[int], None] | None = None
) -> FileTensorDigests:
    """Header digest and every tensor digest of ``path`` (plus the whole-file digest) in ONE read of the file.

    The header is read and checked first (bounded); it gives the byte range of the header and of every tensor,
    which tile the file exactly. Then each chunk read from the file feeds, in the same pass, the whole-file
    hasher and the digester of every tensor (or the header) it overlaps. Memory: one chunk buffer.

    Raises:
        FormatError: the header is malformed or out of bounds.
        InvalidInputError: the file cannot be opened, or shrank while being read.
    """
    with open_regular(path, "file", error=InvalidInputError) as handle:
        size = os.fstat(handle.fileno()).st_size
        raw, header = read_header(handle, size)
        head = new_hasher(algorithm)
        digesters = [TensorDigester(t.name, t.dtype, t.shape, t.nbytes, algorithm) for t in header.tensors]
        feeds = [_Tiling([(0, header.data_start, head.update),
                          *((t.begin, t.end, d.update) for t, d in zip(header.tensors, digesters))])]
        whole = new_hasher(algorithm) if whole_file else None
        if whole is not None:
            feeds.append(_Tiling([(0, size, whole.update)]))
        for tiling in feeds:
            tiling.feed(0, memoryview(raw))
        if progress is not None:
            progress(len(raw))
        _stream_data(handle, path, header.data_start, size, feeds, progress)
    results = tuple((t, d.hexdigest()) for t, d in zip(header.tensors, digesters))
    return FileTensorDigests(head.digest().hex(), results, whole.digest() if whole is not None else None)
