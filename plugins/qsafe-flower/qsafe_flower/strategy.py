"""The server strategy wrapper: signed, encrypted, blind-robust aggregation around any Flower strategy.

The pattern of Flower's DP wrappers: ``QsafeEncryptedAggregation(FedAvg(...), context=..., allowlist=...,
key_authority=...)``. The wrapped strategy still samples nodes, configures rounds, evaluates and aggregates
metrics; the wrapper replaces only the aggregation of arrays. For each reply, one by one:

1. the reply must carry exactly one qsafe update (else ``refused``: malformed);
2. context fingerprint, round, allowlisted client key, ML-DSA signature, ciphertext digests (else ``refused``);
3. not a replay: one update per client key and per nonce in a round (else ``refused``);
4. the blind defense, if any (``norm-bound``/``dp``: the key authority's norm check; ``krum``/``multi-krum``:
   the key authority's selection from encrypted pairwise distances) (else ``rejected``);
5. every ciphertext coefficient within its modulus, same tensor layout (else ``refused``).

The accepted updates' ciphertexts are summed (public material only); the key authority, after recomputing that
sum from the signed updates, returns the mean (with DP noise for ``dp``), which the wrapper adds to the global
arrays. Every node's verdict and the aggregate's digest go into the signed audit trail. A round with fewer than
``min_clients`` accepted updates leaves the global model unchanged (and is recorded so).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from logging import INFO, WARNING
from typing import Any, Protocol

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from qsafe.errors import FormatError, HEMismatchError, QsafeError, UsageError
from qsafe.federated import EncryptedUpdate, HEContext, aggregate, verify_update
from qsafe.keys import PublicKey
from qsafe_flower._records import CONTEXT_KEY, NORM_BOUND_KEY, array_record_of, to_numpy, update_bytes
from qsafe_flower.audit import AuditTrail

__all__ = ["BLIND_DEFENSES", "KeyAuthorityLike", "QsafeEncryptedAggregation"]

BLIND_DEFENSES = ("none", "norm-bound", "dp", "krum", "multi-krum")
# CKKS computes a norm approximately; a client that clipped to exactly C must not be refused for the noise.
_NORM_SLACK = 1e-2


class KeyAuthorityLike(Protocol):
    """What the wrapper asks of a key authority (:class:`~qsafe_flower.KeyAuthority` or its remote stub)."""

    def decrypt_mean(self, aggregate: bytes, updates: Sequence[bytes], round: int,
                     run: str = "") -> dict[str, np.ndarray]: ...

    def norms(self, updates: Sequence[bytes], round: int) -> list[float]: ...

    def krum(self, updates: Sequence[bytes], round: int, f: int, m: int | None) -> tuple[list[int], list[float]]: ...


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Candidate:
    def __init__(self, node: int, data: bytes, update: EncryptedUpdate, reply: Message) -> None:
        self.node, self.data, self.update, self.reply = node, data, update, reply
        self.norm: float | None = None
        self.note = ""


class QsafeEncryptedAggregation(Strategy):
    """Wrap ``strategy`` so that clients' updates arrive signed and HE-encrypted and are aggregated blind.

    Args:
        strategy: the Flower strategy to wrap (sampling, configuration, evaluation, metrics).
        context: the public HE context (a secret one is refused: the aggregator must not hold the key).
        allowlist: client public keys allowed to contribute.
        key_authority: where the secret key lives (a :class:`~qsafe_flower.RemoteKeyAuthority` in deployment).
        defense: one of :data:`BLIND_DEFENSES`.
        defense_params: ``bound`` (norm-bound), ``clip_norm`` (dp: published to clients, checked blind; the
            noise is configured at the key authority), ``f``/``m`` (krum, multi-krum).
        audit: the signed audit trail to write (optional).
        min_clients: fewest accepted updates for a round to change the model.
        run: a name for this run, sent to the key authority (one decryption per run and round).

    Raises:
        UsageError: a secret context, an empty allowlist, or a defense that cannot run blind.
    """

    def __init__(self, strategy: Strategy, *, context: HEContext, allowlist: Sequence[PublicKey],
                 key_authority: KeyAuthorityLike, defense: str = "none", defense_params: dict[str, Any] | None = None,
                 audit: AuditTrail | None = None, min_clients: int = 2, run: str = "") -> None:
        if context.has_secret:
            raise UsageError("the aggregator was given the secret HE context; it must hold only the public one")
        if not allowlist:
            raise UsageError("the client allowlist is empty: no update could ever be accepted")
        if defense not in BLIND_DEFENSES:
            raise UsageError(f"{defense!r} cannot run on encrypted updates; blind defenses: {', '.join(BLIND_DEFENSES)}",
                             hint="use qsafe_flower.robust_strategy for plaintext defenses")
        params = dict(defense_params or {})
        if defense in ("norm-bound", "dp", "krum", "multi-krum") and not (
                context.params.name == "ckks" and context.params.norm_keys):
            raise UsageError(f"blind {defense} needs a ckks context with norm keys (qsafe fl init --scheme ckks "
                             "--norm-keys)")
        self.strategy, self.context, self.allowlist = strategy, context, list(allowlist)
        self.key_authority, self.defense, self.params = key_authority, defense, params
        self.audit, self.min_clients, self.run = audit, min_clients, run
        self.bound: float | None = None
        if defense in ("norm-bound", "dp"):
            self.bound = float(params.get("bound" if defense == "norm-bound" else "clip_norm", 0.5))
        self.current_arrays = ArrayRecord()
        self._sampled: list[int] = []

    def __repr__(self) -> str:
        return f"qsafe encrypted aggregation ({self.defense}) around {self.strategy!r}"

    def summary(self) -> None:
        log(INFO, "\t├──> qsafe: signed HE updates, context %s, %d allowed clients, blind defense %s",
            self.context.fingerprint[:23], len(self.allowlist), self.defense)
        self.strategy.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.current_arrays = arrays
        config[CONTEXT_KEY] = self.context.fingerprint
        if self.bound is not None:
            config[NORM_BOUND_KEY] = self.bound
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._sampled = [int(m.metadata.dst_node_id) for m in messages]
        return messages

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    # -- training aggregation ---------------------------------------------------------------------------------

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        entries: list[dict[str, Any]] = []
        replies = list(replies)
        answered = {int(r.metadata.src_node_id) for r in replies}
        for node in self._sampled:
            if node not in answered:
                self._record(entries, node, None, None, "no-reply", "no reply before the round's timeout")
        candidates = self._checked(server_round, replies, entries)
        kept = self._blind_defense(server_round, candidates, entries)
        arrays, metrics, agg_digest = None, None, "none"
        if len(kept) >= self.min_clients:
            arrays, metrics, agg_digest = self._sum_and_decrypt(server_round, kept, entries)
        else:
            log(WARNING, "qsafe: round %d: %d update(s) accepted, fewer than %d; the global model is unchanged",
                server_round, len(kept), self.min_clients)
        if self.audit is not None:
            self.audit.round(server_round, sorted(entries, key=lambda e: e["client"]), agg_digest)
        return arrays, metrics

    def _record(self, entries: list[dict[str, Any]], node: int, key_id: str | None, digest: str | None,
                decision: str, note: str, norm: float | None = None, weight: float = 0.0) -> None:
        entries.append({"client": node, "key_id": key_id, "digest": digest, "norm": norm, "decision": decision,
                        "weight": round(weight, 9), "note": note[:300]})

    def _checked(self, server_round: int, replies: list[Message], entries: list[dict[str, Any]]) -> list[_Candidate]:
        out: list[_Candidate] = []
        clients: set[str] = set()
        nonces: set[str] = set()
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            if reply.has_error():
                self._record(entries, node, None, None, "no-reply", f"error reply: {reply.error.reason}")
                continue
            data = b""
            try:
                data = update_bytes(reply.content)
                update = EncryptedUpdate.from_bytes(data)
            except FormatError as exc:
                self._record(entries, node, None, _digest(data) if data else None, "refused", f"malformed: {exc}")
                continue
            try:
                verify_update(update, self.context, self.allowlist, server_round)
                if update.client_key_id in clients or update.nonce in nonces:
                    raise HEMismatchError(f"replay: client {update.client_key_id} or its nonce already sent this round")
            except HEMismatchError as exc:
                self._record(entries, node, update.client_key_id, _digest(data), "refused", str(exc))
                continue
            clients.add(update.client_key_id)
            nonces.add(update.nonce)
            out.append(_Candidate(node, data, update, reply))
        return out

    def _blind_defense(self, server_round: int, cands: list[_Candidate],
                       entries: list[dict[str, Any]]) -> list[_Candidate]:
        if self.defense == "none" or not cands:
            return cands
        try:
            if self.defense in ("norm-bound", "dp"):
                assert self.bound is not None
                norms = self.key_authority.norms([c.data for c in cands], server_round)
                keep = [n <= self.bound * (1 + _NORM_SLACK) for n in norms]
                for cand, norm in zip(cands, norms):
                    cand.norm, cand.note = norm, f"encrypted norm check (bound {self.bound:g})"
            else:
                f = int(self.params.get("f", 0))
                m = 1 if self.defense == "krum" else self.params.get("m")
                chosen, scores = self.key_authority.krum([c.data for c in cands], server_round, f, m)
                keep = [i in chosen for i in range(len(cands))]
                for cand, score in zip(cands, scores):
                    cand.note = f"blind krum score {score:.4g}"
        except QsafeError as exc:
            log(WARNING, "qsafe: round %d: the blind %s could not run: %s", server_round, self.defense, exc)
            for cand in cands:
                self._record(entries, cand.node, cand.update.client_key_id, _digest(cand.data), "rejected",
                             f"blind {self.defense} could not run: {exc}")
            return []
        kept = []
        for cand, ok in zip(cands, keep):
            if ok:
                kept.append(cand)
            else:
                self._record(entries, cand.node, cand.update.client_key_id, _digest(cand.data), "rejected",
                             cand.note, cand.norm)
        return kept

    def _sum_and_decrypt(self, server_round: int, kept: list[_Candidate],
                         entries: list[dict[str, Any]]) -> tuple[ArrayRecord | None, MetricRecord | None, str]:
        result = aggregate([c.update for c in kept], self.context, self.allowlist, server_round,
                           labels=[str(c.node) for c in kept])
        refused = {r.source: r for r in result.refused}
        accepted = [c for c in kept if str(c.node) not in refused]
        for cand in kept:
            if str(cand.node) in refused:
                self._record(entries, cand.node, cand.update.client_key_id, _digest(cand.data), "refused",
                             refused[str(cand.node)].reason)
        agg = result.aggregate
        mean: dict[str, np.ndarray] | None = None
        note = "encrypted sum"
        if agg is not None and len(accepted) >= self.min_clients:
            try:
                mean = self.key_authority.decrypt_mean(agg.to_bytes(), [c.data for c in accepted], server_round,
                                                       self.run)
            except QsafeError as exc:
                log(WARNING, "qsafe: round %d: the key authority refused to decrypt: %s", server_round, exc)
                note = f"key authority refused: {exc}"
        weight = 1.0 / len(accepted) if mean is not None else 0.0
        for cand in accepted:
            self._record(entries, cand.node, cand.update.client_key_id, _digest(cand.data),
                         "accepted" if mean is not None else "rejected",
                         f"{cand.note}; {note}".lstrip("; "), cand.norm, weight)
        if mean is None or agg is None:
            return None, None, "none"
        current = to_numpy(self.current_arrays)
        if set(mean) != set(current):
            log(WARNING, "qsafe: round %d: the decrypted update's tensors differ from the global model's", server_round)
            return None, None, "none"
        new = {k: (v.astype(np.float64) + mean[k].astype(np.float64)).astype(v.dtype) for k, v in current.items()}
        metrics = self._metrics([c.reply for c in accepted])
        return array_record_of(new), metrics, _digest(agg.to_bytes())

    def _metrics(self, replies: list[Message]) -> MetricRecord | None:
        aggr = getattr(self.strategy, "train_metrics_aggr_fn", None)
        key = getattr(self.strategy, "weighted_by_key", "num-examples")
        contents = [r.content for r in replies if r.content.metric_records]
        if aggr is None or not contents:
            return None
        try:
            return aggr(contents, key)  # type: ignore[no-any-return]
        except (KeyError, ValueError, TypeError) as exc:
            from qsafe._text import printable

            log(WARNING, "qsafe: training metrics not aggregated: %s", printable(exc))  # names clients' metric keys
            return None
