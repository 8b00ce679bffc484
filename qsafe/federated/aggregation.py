"""Aggregation (public material only) and decryption of the aggregate (key authority).

The aggregate is the ``qsafe-fl-aggregate/v1`` container: header ``{format_version, kind: "aggregate", scheme,
context_fingerprint, tensors, packing, round, count, contributors: [{client_key_id, nonce, update_sha256}],
ciphertext_sha256}`` and the summed ciphertexts. It is not signed (the aggregator holds no signing key); the
digests only detect accidental damage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from qsafe._he import cipher, container, packing, raw
from qsafe._he.params import params_from_json
from qsafe._labels import FL_AGGREGATE_MAGIC
from qsafe.errors import FormatError, HEMismatchError, IntegrityError, QsafeError, UsageError
from qsafe.federated.context import HEContext
from qsafe.federated.update import EncryptedUpdate, verify_update
from qsafe.keys import PublicKey

__all__ = ["AggregationOutcome", "EncryptedAggregate", "Refusal", "aggregate", "decrypt_aggregate", "infer_round"]

UpdateSource = Union[EncryptedUpdate, str, "os.PathLike[str]"]
_AGG_KEYS = {"format_version", "kind", "scheme", "context_fingerprint", "tensors", "packing", "round", "count",
             "contributors", "ciphertext_sha256"}


@dataclass(frozen=True)
class Refusal:
    """An update the aggregator refused: where it came from, who claimed to send it, and why."""

    source: str
    client_key_id: str | None
    reason: str
    error: QsafeError

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "client_key_id": self.client_key_id, "reason": self.error.exact_message,
                "error": type(self.error).__name__, "exit_code": self.error.exit_code}


@dataclass(frozen=True)
class EncryptedAggregate:
    """The encrypted sum of the accepted updates."""

    header_bytes: bytes
    header: dict[str, Any]
    ciphertexts: tuple[bytes, ...]

    @property
    def count(self) -> int:
        return int(self.header["count"])

    def to_bytes(self) -> bytes:
        return container.encode(FL_AGGREGATE_MAGIC, self.header_bytes, self.ciphertexts)

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedAggregate:
        """Parse an aggregate container.

        Raises:
            FormatError: malformed container or header.
        """
        box = container.decode(data, FL_AGGREGATE_MAGIC, "federated aggregate")
        h = box.header
        if set(h) != _AGG_KEYS or h["kind"] != "aggregate" or h["format_version"] != 1 or box.signature:
            raise FormatError("not a version-1 federated aggregate header")
        params = params_from_json(h["scheme"])
        specs = packing.layout_from_json(h["tensors"])
        chunks = packing.chunk_count(packing.total_values(specs), params)
        if not (isinstance(h["count"], int) and 1 <= h["count"] <= params.max_clients
                and isinstance(h["contributors"], list) and len(h["contributors"]) == h["count"]
                and isinstance(h["ciphertext_sha256"], list) and len(h["ciphertext_sha256"]) == chunks
                and len(box.blobs) == chunks and isinstance(h["round"], int)
                and all(len(b) == params.ciphertext_bytes for b in box.blobs)):
            raise FormatError("the aggregate's count, contributors or ciphertexts are inconsistent")
        if not all(isinstance(c, dict) and set(c) == {"client_key_id", "nonce", "update_sha256"}
                   and all(isinstance(v, str) for v in c.values()) for c in h["contributors"]) \
                or not all(isinstance(d, str) and len(d) == 64 for d in h["ciphertext_sha256"]):
            raise FormatError("the aggregate's contributor list or digests are malformed")
        return cls(box.header_bytes, h, box.blobs)


@dataclass
class AggregationOutcome:
    """What :func:`aggregate` returns: the encrypted sum (None if nothing was accepted) and the verdicts."""

    aggregate: EncryptedAggregate | None
    accepted: list[dict[str, str]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "refused": [r.to_json() for r in self.refused],
                "count": len(self.accepted)}


class _Sum:
    """Running state of one aggregation: replay tracking, the layout, and the ciphertext sums."""

    def __init__(self, context: HEContext, allowlist: Sequence[PublicKey], round: int) -> None:
        self.context, self.allowlist, self.round = context, list(allowlist), round
        self.clients: set[str] = set()
        self.nonces: set[str] = set()
        self.tensors: Any = None
        self.sum: raw.Accumulator | None = None
        self.accepted: list[dict[str, str]] = []

    def admit(self, update: EncryptedUpdate) -> None:
        """Check ``update`` fully, then add it; raises (adding nothing) if it is refused."""
        client = verify_update(update, self.context, self.allowlist, self.round)
        if update.nonce in self.nonces:
            raise HEMismatchError(f"replay: nonce {update.nonce[:16]}… was already aggregated this round")
        if client.key_id in self.clients:
            raise HEMismatchError(f"replay: client {client.key_id} already contributed to this round")
        if self.tensors is not None and update.header["tensors"] != self.tensors:
            raise HEMismatchError("layout mismatch: tensor names/shapes/dtypes differ from the first update")
        if len(self.accepted) >= self.context.params.max_clients:
            raise HEMismatchError(f"too many clients: this context's headroom is {self.context.params.max_clients}")
        layout = self.context.raw_layout()
        try:  # parse and check every ciphertext before adding any, so a bad one leaves the sum untouched
            coeffs = [raw.parse(b, layout) for b in update.ciphertexts]
        except FormatError as exc:
            raise HEMismatchError(f"malformed ciphertext: {exc}") from exc
        if self.sum is None:
            self.sum = raw.Accumulator(layout, len(coeffs))
        self.sum.add(coeffs)
        self.tensors = update.header["tensors"]
        self.clients.add(client.key_id)
        self.nonces.add(update.nonce)
        self.accepted.append({"client_key_id": client.key_id, "nonce": update.nonce,
                              "update_sha256": container.sha256_hex(update.header_bytes)})

    def result(self, first: EncryptedUpdate) -> EncryptedAggregate:
        assert self.sum is not None
        blobs = self.sum.blobs()
        header = {k: first.header[k] for k in ("scheme", "context_fingerprint", "tensors", "packing", "round")}
        header.update({"format_version": 1, "kind": "aggregate", "count": len(self.accepted),
                       "contributors": self.accepted, "ciphertext_sha256": [container.sha256_hex(b) for b in blobs]})
        header_bytes = container.canonical_json(header)
        return EncryptedAggregate(header_bytes, header, tuple(blobs))


def aggregate(updates: Iterable[UpdateSource], context: HEContext, allowlist: Sequence[PublicKey], round: int, *,
              progress: Callable[[int], None] | None = None,
              labels: Sequence[str] | None = None) -> AggregationOutcome:
    """Sum the valid updates homomorphically; refuse and report the others. Needs no secret.

    Each update is checked (format, context fingerprint, round, allowlisted client, ML-DSA signature, ciphertext
    digests, no replayed nonce or client, same layout) before any of its ciphertexts is added. Paths are read one
    at a time, so memory holds the running sum and one update.

    Args:
        updates: parsed updates, or paths of ``.qfl`` files.
        context: the public HE context.
        allowlist: client public keys allowed to contribute (must not be empty).
        round: the round being aggregated.
        progress: called with 1 after each update.
        labels: names for the updates in refusals (default: the path, or ``<update>`` for a parsed one), e.g. the
            Flower node each came from.

    Returns:
        The aggregate (None when no update was accepted), the accepted contributors and the refusals.

    Raises:
        UsageError: empty allowlist.
    """
    if not allowlist:
        raise UsageError("the client allowlist is empty: no update could ever be accepted")
    state, first = _Sum(context, allowlist, round), None
    refused: list[Refusal] = []
    for index, item in enumerate(updates):
        source = item if isinstance(item, EncryptedUpdate) else os.fspath(item)
        label = labels[index] if labels is not None else "<update>" if isinstance(source, EncryptedUpdate) else source
        claimed = None
        try:
            update = _load(source)
            claimed = update.client_key_id
            state.admit(update)
            first = first or update
        except (FormatError, HEMismatchError) as err:
            refused.append(Refusal(label, claimed, str(err), err))
        if progress:
            progress(1)
    agg = state.result(first) if first is not None else None
    return AggregationOutcome(agg, state.accepted, refused)


def _load(item: UpdateSource) -> EncryptedUpdate:
    return item if isinstance(item, EncryptedUpdate) else EncryptedUpdate.load(item)


def infer_round(updates: Iterable[UpdateSource], context: HEContext, allowlist: Sequence[PublicKey]) -> int:
    """The round to aggregate when none is given: the highest round named by an update that is for this
    context and validly signed by an allowlisted client (so an old, replayed update cannot pin an old round).
    Falls back to the highest round of any parseable update, then 0, so refusals still name their real cause.

    Args:
        updates: parsed updates or ``.qfl`` paths (paths are read once more by :func:`aggregate`).
        context: the public HE context.
        allowlist: allowed client public keys.

    Returns:
        The round number.
    """
    valid: list[int] = []
    seen: list[int] = []
    for item in updates:
        try:
            update = _load(item)
            seen.append(update.round)
            verify_update(update, context, allowlist, update.round)
            valid.append(update.round)
        except (FormatError, HEMismatchError):
            continue
    return max(valid or seen or [0])


def _check_plausible(peak: float, bound: float, nonzero_padding: int, count: int) -> None:
    """A sum of ``count`` clipped updates has |x| <= count * clip and zero padding; a forged or damaged aggregate
    (random ciphertexts, another key) decrypts to values far beyond. Not a proof of honesty (anyone with the
    public context can encrypt plausible values): recompute the aggregate from the signed updates for that."""
    if peak > bound or nonzero_padding:
        raise HEMismatchError(
            f"the aggregate decrypts to values no sum of {count} clipped updates can produce (peak {peak:.4g} > "
            f"{bound:.4g}, {nonzero_padding} non-zero padding value(s)): it was forged or damaged; nothing was written",
            hint="recompute it from the signed updates (--recompute-from DIR --clients KEYS) before trusting it")


def decrypt_aggregate(agg: EncryptedAggregate, context: HEContext, *, min_clients: int = 2,
                      average: bool = True) -> dict[str, np.ndarray]:
    """Decrypt the aggregate into tensors with the updates' names, shapes and dtypes.

    Args:
        agg: the encrypted aggregate.
        context: the secret HE context.
        min_clients: refuse aggregates of fewer contributors (one contributor's "sum" is that client's update).
        average: divide by the number of contributors (the default), else return the sum.

    Returns:
        name -> array (float64 arithmetic, cast to each tensor's dtype).

    Raises:
        KeyFileError: ``context`` is public.
        HEMismatchError: the aggregate is for another context, or has fewer than ``min_clients`` contributors.
        IntegrityError: a ciphertext does not match its digest.
        HEMismatchError: it decrypts to values no sum of its contributors' clipped updates can produce.
    """
    params = context.params
    if agg.header["context_fingerprint"] != context.fingerprint or params_from_json(agg.header["scheme"]) != params:
        raise HEMismatchError(f"wrong context: aggregate made under {agg.header['context_fingerprint']}, "
                              f"secret context is {context.fingerprint}")
    if agg.count < min_clients:
        raise HEMismatchError(f"the aggregate holds {agg.count} update(s), fewer than the minimum {min_clients}",
                              hint="decrypting a one-client aggregate would reveal that client's update")
    for i, (blob, digest) in enumerate(zip(agg.ciphertexts, agg.header["ciphertext_sha256"])):
        if container.sha256_hex(blob) != digest:
            raise IntegrityError(f"aggregate ciphertext {i} does not match its digest")
    specs = packing.layout_from_json(agg.header["tensors"])
    total = packing.total_values(specs)
    ts_ctx = context.tenseal_secret()
    parts = cipher.decrypt_all(agg.ciphertexts, params, ts_ctx, context.raw_layout())
    if params.name == "bfv-packed":
        lanes = packing.unpack(np.concatenate(parts), params, len(parts) * params.values_per_ciphertext)
        _check_plausible(float(np.abs(lanes[:total]).max(initial=0)), agg.count * params.quant_max,
                         int(np.count_nonzero(lanes[total:])), agg.count)
        flat = packing.dequantize(lanes[:total], params)
    else:
        values = np.concatenate(parts)
        _check_plausible(float(np.abs(values[:total]).max(initial=0)), agg.count * params.clip * 1.001 + 1e-3,
                         int(np.count_nonzero(np.abs(values[total:]) > 1e-3)), agg.count)
        flat = values[:total]
    if average:
        flat = flat / agg.count
    return packing.unflatten(flat, specs)
