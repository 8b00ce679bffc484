"""The key authority: the only holder of the HE secret key, and what it agrees to decrypt.

Design decision (see README): the secret context never sits with the aggregator (the ServerApp). It is held by a
separate key-authority process (:class:`KeyAuthorityServer`, ``qsafe-flower-key-authority``) that the strategy
wrapper reaches over **mutually authenticated TLS** (:class:`RemoteKeyAuthority`). The key authority trusts
nothing the aggregator computed: for every request it re-checks the signed updates itself and

- ``decrypt-mean``: recomputes the aggregate from the updates it names (each signed by an allowlisted client for
  this round) and refuses unless it is byte-identical, holds at least ``min_clients`` updates, and no aggregate of
  this round was decrypted before (two decryptions of different subsets would reveal a difference); it returns
  the mean, with Gaussian noise ``sigma * C / n`` added when configured (central DP, noise at the key authority);
- ``norms``: returns each update's L2 norm, computed on the ciphertexts (CKKS with norm keys), coarsened to three
  significant digits (exact CKKS decryptions handed back can leak the key: IND-CPA^D);
- ``krum``: computes the pairwise squared distances on the ciphertexts, decrypts only those, and returns the
  Multi-Krum selection and scores (coarsened).

It could decrypt any single update it is sent: like any single-key HE design, confidentiality rests on the key
authority not colluding with the aggregator. :class:`KeyAuthority` used in-process (simulation, tests) puts the
secret beside the aggregator: fine on one machine you own, not a deployment.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsafe.errors import FormatError, HEMismatchError, UsageError
from qsafe.federated import (
    EncryptedAggregate,
    EncryptedUpdate,
    HEContext,
    decrypt_aggregate,
    decrypt_squared_distance,
    decrypt_squared_norm,
    encrypted_squared_norm,
    verify_aggregate,
    verify_update,
)
from qsafe.federated.defenses.krum import krum_scores_from_distances
from qsafe.keys import PublicKey

__all__ = ["KeyAuthority", "coarse", "decode_request", "encode_request"]

REQUEST_MAGIC = b"qsafe-flower-ka-request/v1\n"
_MAX_HEADER = 1 << 20


def coarse(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits (what the key authority releases of a CKKS scalar)."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def encode_request(op: str, round: int, blobs: Sequence[bytes], params: dict[str, Any] | None = None) -> bytes:
    """One request to the key authority: magic, JSON header, length-prefixed blobs."""
    header = json.dumps({"op": op, "round": round, "params": params or {}}, sort_keys=True).encode()
    parts = [REQUEST_MAGIC, struct.pack(">I", len(header)), header, struct.pack(">I", len(blobs))]
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    return b"".join(parts)


def decode_request(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Inverse of :func:`encode_request`, bounded by ``len(data)``.

    Raises:
        FormatError: malformed.
    """
    view = memoryview(data)
    if not data.startswith(REQUEST_MAGIC):
        raise FormatError("not a qsafe key-authority request")
    pos = len(REQUEST_MAGIC)

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > len(view):
            raise FormatError("the key-authority request is truncated")
        out = bytes(view[pos:pos + n])
        pos += n
        return out

    (hlen,) = struct.unpack(">I", take(4))
    if hlen > _MAX_HEADER:
        raise FormatError("the key-authority request header is too long")
    try:
        header = json.loads(take(hlen))
    except ValueError as exc:
        raise FormatError(f"the key-authority request header is not JSON: {exc}") from exc
    if not (isinstance(header, dict) and isinstance(header.get("op"), str) and isinstance(header.get("round"), int)
            and isinstance(header.get("params"), dict)):
        raise FormatError("the key-authority request header is malformed")
    (count,) = struct.unpack(">I", take(4))
    blobs = [take(struct.unpack(">Q", take(8))[0]) for _ in range(count)]
    if pos != len(view):
        raise FormatError("the key-authority request has trailing bytes")
    return header, blobs


@dataclass
class KeyAuthority:
    """Holds the secret HE context; decrypts only what the rules above allow.

    Args:
        secret: the secret HE context.
        allowlist: the client public keys it accepts updates from.
        min_clients: the fewest updates an aggregate must hold to be decrypted.
        noise_multiplier: sigma of the Gaussian noise added to the decrypted mean (0: none).
        clip_norm: C, the L2 bound the clients clipped to (needed for noise).
        seed: seeds the noise (tests); None draws from the OS.
    """

    secret: HEContext
    allowlist: Sequence[PublicKey]
    min_clients: int = 2
    noise_multiplier: float = 0.0
    clip_norm: float | None = None
    seed: int | None = None
    decrypted_rounds: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.secret.has_secret:
            raise UsageError("the key authority needs the secret HE context")
        if self.noise_multiplier > 0 and not (self.clip_norm and self.clip_norm > 0):
            raise UsageError("DP noise at the key authority needs the clip norm the clients clip to")
        self._rng = np.random.default_rng(self.seed)

    def _verified(self, blobs: Sequence[bytes], round: int) -> list[EncryptedUpdate]:
        updates = [EncryptedUpdate.from_bytes(b) for b in blobs]
        for update in updates:
            verify_update(update, self.secret, self.allowlist, round)
        return updates

    def decrypt_mean(self, aggregate: bytes, updates: Sequence[bytes], round: int, run: str = "") -> dict[str, np.ndarray]:
        """Check the aggregate against the signed updates, then decrypt the mean (plus DP noise if configured).

        ``run`` names the training run (Flower's run id): one decryption per ``(run, round)``.

        Raises:
            HEMismatchError: wrong round, a round already decrypted, too few updates, or the aggregate is not the
                sum of the valid updates it names.
            FormatError: malformed aggregate or update.
        """
        agg = EncryptedAggregate.from_bytes(aggregate)
        if agg.header["round"] != round:
            raise HEMismatchError(f"the aggregate is for round {agg.header['round']}, not {round}")
        if (run, round) in self.decrypted_rounds:
            raise HEMismatchError(f"an aggregate of round {round} was already decrypted; the key authority decrypts "
                                  "one per round")
        verify_aggregate(agg, [EncryptedUpdate.from_bytes(b) for b in updates], self.secret, self.allowlist)
        mean = decrypt_aggregate(agg, self.secret, min_clients=self.min_clients)
        self.decrypted_rounds.add((run, round))
        if self.noise_multiplier > 0:
            assert self.clip_norm is not None
            std = self.noise_multiplier * self.clip_norm / agg.count
            mean = {k: (v.astype(np.float64) + self._rng.normal(0.0, std, v.shape)).astype(v.dtype)
                    for k, v in mean.items()}
        return mean

    def norms(self, updates: Sequence[bytes], round: int) -> list[float]:
        """Each verified update's L2 norm from its ciphertexts, coarsened (blind norm check).

        Raises:
            HEMismatchError: an update is not a valid one of this round (the whole request is refused).
            UsageError: the context has no norm keys.
        """
        out = []
        for update in self._verified(updates, round):
            squared = decrypt_squared_norm(encrypted_squared_norm(update, self.secret), self.secret)
            out.append(coarse(math.sqrt(max(squared, 0.0))))
        return out

    def krum(self, updates: Sequence[bytes], round: int, f: int, m: int | None) -> tuple[list[int], list[float]]:
        """Multi-Krum over encrypted updates: indices of the ``m`` (default ``n - f``) kept, and every score.

        Raises:
            HEMismatchError: an update is not a valid one of this round.
            InvalidInputError: ``n <= 2f + 2``.
        """
        verified = self._verified(updates, round)
        n = len(verified)
        dist = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                dist[i, j] = dist[j, i] = max(decrypt_squared_distance(verified[i], verified[j], self.secret), 0.0)
        scores = krum_scores_from_distances(dist, f)
        keep = min(n, m if m is not None else n - f)
        chosen = sorted(int(i) for i in np.argsort(scores, kind="stable")[:keep])
        return chosen, [coarse(float(s)) for s in scores]

    def handle(self, request: bytes) -> tuple[str, bytes]:
        """Serve one encoded request: ``(content type, body)``.

        Raises:
            FormatError, HEMismatchError, UsageError, InvalidInputError: refused.
        """
        header, blobs = decode_request(request)
        op, rnd, params = header["op"], header["round"], header["params"]
        if op == "decrypt-mean":
            if not blobs:
                raise FormatError("decrypt-mean needs the aggregate and its updates")
            from safetensors.numpy import save

            return "application/octet-stream", save(self.decrypt_mean(blobs[0], blobs[1:], rnd, str(params.get("run", ""))))
        if op == "norms":
            return "application/json", json.dumps({"norms": self.norms(blobs, rnd)}).encode()
        if op == "krum":
            chosen, scores = self.krum(blobs, rnd, int(params.get("f", 0)), params.get("m"))
            return "application/json", json.dumps({"chosen": chosen, "scores": scores}).encode()
        raise FormatError(f"unknown key-authority operation {op!r}")
