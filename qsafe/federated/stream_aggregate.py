"""Streaming aggregation of ``.qfl`` files: memory independent of the update size.

Two passes over the files, never more than one ciphertext per update in memory:

1. **check**, file by file: the container's framing and header (read, not the ciphertexts), context, round,
   allowlisted client, ML-DSA signature, no replayed client or nonce, the first update's tensor layout; then the
   ciphertexts are streamed once: each must match its signed digest and have every coefficient below its prime.
   A file failing any check is refused (with the reason) and never touches the sum.
2. **sum**, ciphertext by ciphertext: ciphertext *i* of every accepted file is read again, its digest compared
   once more (a file changed between the passes aborts the whole aggregation: nothing is written), and added
   modulo each prime; the sum is written out at once. The output header, whose size does not depend on the
   digests, is written first with placeholders and rewritten in place at the end.

The output is byte-identical to :func:`qsafe.federated.aggregate`'s (tested).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from qsafe import _json
from qsafe._he import container, raw
from qsafe._labels import FL_AGGREGATE_MAGIC, FL_UPDATE_MAGIC
from qsafe.errors import FormatError, HEMismatchError, IntegrityError, UsageError
from qsafe.federated.aggregation import AggregationOutcome, Refusal
from qsafe.federated.context import HEContext
from qsafe.federated.update import EncryptedUpdate, check_header, verify_update
from qsafe.keys import PublicKey

__all__ = ["aggregate_files", "infer_round_of_files", "read_update_header"]


@dataclass(frozen=True)
class _Framed:
    """An update file's header (parsed and structure-checked) and where its ciphertexts are."""

    path: Path
    update: EncryptedUpdate  # header and signature only: ``ciphertexts`` is empty
    offsets: tuple[int, ...]
    blob_size: int


def read_update_header(path: str | os.PathLike[str]) -> tuple[EncryptedUpdate, tuple[int, ...], int]:
    """Frame a ``.qfl`` file without reading its ciphertexts.

    Returns:
        The update with its header and signature (no ciphertexts), the file offset of each ciphertext, and
        their common size.

    Raises:
        FormatError: unreadable, malformed, trailing bytes, or a header inconsistent with the ciphertexts.
    """
    try:
        with open(path, "rb") as handle:
            return _frame(handle, os.fstat(handle.fileno()).st_size, str(path))
    except OSError as exc:
        raise FormatError(f"cannot read update {path}: {exc.strerror}") from exc


def _frame(handle: BinaryIO, size: int, what: str) -> tuple[EncryptedUpdate, tuple[int, ...], int]:
    def take(n: int) -> bytes:
        data = handle.read(n)
        if len(data) != n:
            raise FormatError("the federated update is truncated")
        return data

    if handle.read(len(FL_UPDATE_MAGIC)) != FL_UPDATE_MAGIC:
        raise FormatError(f"not a federated update (expected it to start with {FL_UPDATE_MAGIC!r})")
    (hlen,) = struct.unpack(">I", take(4))
    if hlen > container.MAX_HEADER:
        raise FormatError(f"the header length ({hlen}) exceeds the limit")
    header_bytes = take(hlen)
    header = _json.loads(header_bytes, "the federated update's header", max_bytes=container.MAX_HEADER)
    if not isinstance(header, dict) or container.canonical_json(header) != header_bytes:
        raise FormatError("the federated update's header is not a canonical JSON object")
    (count,) = struct.unpack(">I", take(4))
    if count > container.MAX_BLOBS:
        raise FormatError(f"too many ciphertexts ({count})")
    offsets, lengths = [], []
    position = handle.tell()
    for _ in range(count):
        handle.seek(position)
        (length,) = struct.unpack(">Q", take(8))
        if length > container.MAX_BLOB or position + 8 + length > size:
            raise FormatError("a ciphertext runs past the end of the file")
        offsets.append(position + 8)
        lengths.append(length)
        position += 8 + length
    handle.seek(position)
    (slen,) = struct.unpack(">I", take(4))
    if slen > container.MAX_SIGNATURE:
        raise FormatError("the signature length exceeds the limit")
    signature = take(slen)
    if handle.tell() != size:
        raise FormatError(f"{size - handle.tell()} unexpected trailing bytes")
    check_header(header, lengths, signature)
    return EncryptedUpdate(header_bytes, header, (), signature), tuple(offsets), lengths[0] if lengths else 0


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise IntegrityError(f"{handle.name} changed while it was aggregated")
    return data


def _check_file(path: Path, context: HEContext, allowlist: Sequence[PublicKey], round: int, clients: set[str],
                nonces: set[str], tensors: object) -> _Framed:
    update, offsets, size = read_update_header(path)
    verify_update(update, context, allowlist, round)  # ciphertexts are checked below, streamed
    if update.nonce in nonces:
        raise HEMismatchError(f"replay: nonce {update.nonce[:16]}… was already aggregated this round")
    if update.client_key_id in clients:
        raise HEMismatchError(f"replay: client {update.client_key_id} already contributed to this round")
    if tensors is not None and update.header["tensors"] != tensors:
        raise HEMismatchError("layout mismatch: tensor names/shapes/dtypes differ from the first update")
    layout = context.raw_layout()
    with open(path, "rb") as handle:
        for i, (offset, digest) in enumerate(zip(offsets, update.header["ciphertext_sha256"])):
            blob = _read(handle, offset, size)
            if hashlib.sha256(blob).hexdigest() != digest:
                raise HEMismatchError(f"ciphertext {i} does not match its signed digest (modified in transit)")
            try:
                raw.parse(blob, layout)
            except FormatError as exc:
                raise HEMismatchError(f"malformed ciphertext: {exc}") from exc
    return _Framed(path, update, offsets, size)


def aggregate_files(paths: Sequence[str | os.PathLike[str]], context: HEContext, allowlist: Sequence[PublicKey],
                    round: int, output: str | os.PathLike[str], *,
                    progress: Callable[[int], None] | None = None) -> AggregationOutcome:
    """Check and sum ``.qfl`` files into the aggregate file ``output``, memory flat in the update size.

    Args:
        paths: the update files.
        context: the public HE context.
        allowlist: client public keys allowed to contribute (must not be empty).
        round: the round being aggregated.
        output: the aggregate file, written atomically and only when some update is accepted (never one of
            ``paths``).
        progress: called with 1 per file checked and 1 per file summed.

    Returns:
        The verdicts; ``aggregate`` is None (the sum is in ``output``: read it with
        :meth:`EncryptedAggregate.from_bytes`).

    Raises:
        UsageError: empty allowlist.
        OutputExistsError: ``output`` is one of the inputs.
        IntegrityError: a file changed between the check and the sum (nothing is written).
    """
    from qsafe._io import atomic_output, refuse_same_file

    refuse_same_file(Path(output), *(Path(p) for p in paths))
    if not allowlist:
        raise UsageError("the client allowlist is empty: no update could ever be accepted")
    accepted: list[_Framed] = []
    refused: list[Refusal] = []
    clients: set[str] = set()
    nonces: set[str] = set()
    for item in paths:
        path = Path(item)
        claimed = None
        try:
            if len(accepted) >= context.params.max_clients:
                raise HEMismatchError(f"too many clients: this context's headroom is {context.params.max_clients}")
            framed = _check_file(path, context, allowlist, round, clients, nonces,
                                 accepted[0].update.header["tensors"] if accepted else None)
            accepted.append(framed)
            clients.add(framed.update.client_key_id)
            nonces.add(framed.update.nonce)
        except (FormatError, HEMismatchError) as err:
            try:
                claimed = read_update_header(path)[0].client_key_id
            except FormatError:
                claimed = None
            refused.append(Refusal(str(path), claimed, str(err), err))
        if progress:
            progress(1)
    records = [{"client_key_id": f.update.client_key_id, "nonce": f.update.nonce,
                "update_sha256": container.sha256_hex(f.update.header_bytes)} for f in accepted]
    if accepted:
        with atomic_output(output, inputs=tuple(Path(p) for p in paths)) as out:
            _sum_into(accepted, context, out, records, progress)
    result = AggregationOutcome(None, records, refused)
    return result


def _sum_into(accepted: list[_Framed], context: HEContext, out: BinaryIO, records: list[dict[str, str]],
              progress: Callable[[int], None] | None) -> None:
    first = accepted[0].update.header
    chunks = len(accepted[0].offsets)
    header = {k: first[k] for k in ("scheme", "context_fingerprint", "tensors", "packing", "round")}
    header.update({"format_version": 1, "kind": "aggregate", "count": len(accepted), "contributors": records,
                   "ciphertext_sha256": ["0" * 64] * chunks})
    placeholder = container.canonical_json(header)
    layout = context.raw_layout()
    out.write(FL_AGGREGATE_MAGIC + struct.pack(">I", len(placeholder)))
    header_at = out.tell()
    out.write(placeholder + struct.pack(">I", chunks))
    digests = []
    with ExitStack() as stack:
        handles = [stack.enter_context(open(f.path, "rb")) for f in accepted]
        for i in range(chunks):
            acc = raw.Accumulator(layout, 1)
            for framed, handle in zip(accepted, handles):
                blob = _read(handle, framed.offsets[i], framed.blob_size)
                if hashlib.sha256(blob).hexdigest() != framed.update.header["ciphertext_sha256"][i]:
                    raise IntegrityError(f"{framed.path} changed while it was aggregated; nothing was written")
                acc.add([raw.parse(blob, layout)])
            (blob,) = acc.blobs()
            out.write(struct.pack(">Q", len(blob)) + blob)
            digests.append(hashlib.sha256(blob).hexdigest())
    header["ciphertext_sha256"] = digests
    final = container.canonical_json(header)
    end = out.tell()
    out.seek(header_at)
    out.write(final)
    out.seek(end)
    out.write(struct.pack(">I", 0))
    if progress:
        progress(len(accepted))



def infer_round_of_files(paths: Sequence[str | os.PathLike[str]], context: HEContext,
                         allowlist: Sequence[PublicKey]) -> int:
    """:func:`qsafe.federated.infer_round` reading only each file's header and signature (not its ciphertexts)."""
    valid: list[int] = []
    seen: list[int] = []
    for path in paths:
        try:
            update = read_update_header(path)[0]
            seen.append(update.round)
            verify_update(update, context, allowlist, update.round)
            valid.append(update.round)
        except (FormatError, HEMismatchError):
            continue
    return max(valid or seen or [0])
