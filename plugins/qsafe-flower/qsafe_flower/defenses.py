"""qsafe's plaintext robust-aggregation defenses as Flower strategies.

``robust_strategy("multi-krum", f=4)`` is a :class:`flwr.serverapp.strategy.FedAvg` (same sampling, configuration,
evaluation and metrics) whose array aggregation runs the qsafe defense of that name on the clients' updates
(``local - global``, flattened in the global ArrayRecord's order): ``norm-bound``, ``krum``, ``multi-krum``,
``median``, ``trimmed-mean``, ``foolsgold``, ``flame``, ``dp`` (plus ``none``, qsafe's example-weighted FedAvg).
The defenses and their parameters come from qsafe's defense registry, so a defense a plugin registers there is
available here too. Each node's decision (accepted, clipped, rejected, down-weighted) and the update's digest
and norm can go to the signed audit trail.

Replies are ordered by the ``qsafe-client`` metric when the clients report one (else by node id) so that a run is
reproducible whatever order Flower delivers them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from qsafe.federated.audit import update_digest
from qsafe.federated.defenses import ClientUpdate, Strategy
from qsafe_flower._records import array_record_of, only_array_record, to_numpy
from qsafe_flower.audit import AuditTrail
from qsafe_flower.registry import make_defense

__all__ = ["ORDER_KEY", "RobustStrategy", "robust_strategy"]

ORDER_KEY = "qsafe-client"


class RobustStrategy(FedAvg):
    """FedAvg whose array aggregation is a qsafe defense.

    Args:
        defense: a qsafe defense object (see :func:`robust_strategy` to make one by name).
        seed: seeds the defense's randomness (an int or a sequence, as numpy's ``default_rng`` takes).
        audit: the signed audit trail to write (optional).
        **kwargs: FedAvg's own arguments (``fraction_train``, ``min_available_nodes``, ...).
    """

    def __init__(self, defense: Strategy, *, seed: int | Sequence[int] = 0, audit: AuditTrail | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.defense, self.audit = defense, audit
        self._rng = np.random.default_rng(seed)
        self.current_arrays = ArrayRecord()

    def __repr__(self) -> str:
        return f"qsafe {self.defense.name} (Flower FedAvg sampling)"

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.current_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def _order(self, reply: Message) -> tuple[int, int]:
        for record in reply.content.metric_records.values():
            if ORDER_KEY in record:
                return int(record[ORDER_KEY]), int(reply.metadata.src_node_id)  # type: ignore[arg-type]
        return int(reply.metadata.src_node_id), 0

    def _weight(self, reply: Message) -> int:
        for record in reply.content.metric_records.values():
            if self.weighted_by_key in record:
                return int(record[self.weighted_by_key])  # type: ignore[arg-type]
        return 1

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        valid.sort(key=self._order)
        current = to_numpy(self.current_arrays)
        names = list(current)
        updates = []
        for index, reply in enumerate(valid):
            local = to_numpy(only_array_record(reply.content)[1])
            delta = np.concatenate([(local[k].astype(np.float64) - current[k].astype(np.float64)).reshape(-1)
                                    for k in names]).astype(np.float32)
            updates.append(ClientUpdate(index, delta, self._weight(reply)))
        result = self.defense.aggregate(server_round, updates, self._rng)
        new, offset = {}, 0
        for k in names:
            size = current[k].size
            new[k] = (current[k] + result.delta[offset:offset + size].reshape(current[k].shape)).astype(current[k].dtype)
            offset += size
        metrics = self.train_metrics_aggr_fn([r.content for r in valid], self.weighted_by_key)
        if self.audit is not None:
            self.audit.round(server_round, [
                {"client": int(r.metadata.src_node_id), "key_id": None, "digest": update_digest(u.delta),
                 "norm": float(np.linalg.norm(u.delta.astype(np.float64))), "decision": d.decision,
                 "weight": round(d.weight, 9), "note": d.note}
                for r, u, d in zip(valid, updates, result.decisions)], update_digest(result.delta))
        return array_record_of(new), metrics


def robust_strategy(defense: str, *, seed: int | Sequence[int] = 0, audit: AuditTrail | None = None,
                    fedavg: dict[str, Any] | None = None, **params: Any) -> RobustStrategy:
    """A Flower strategy running qsafe's defense ``defense`` with ``params`` (e.g. ``f=4`` for multi-krum).

    Args:
        defense: a name from :func:`~qsafe_flower.registry.defense_names`.
        seed: seeds the defense's randomness.
        audit: the signed audit trail (optional).
        fedavg: FedAvg's keyword arguments (sampling, minimum nodes, keys).
        **params: the defense's parameters.

    Raises:
        UsageError: unknown defense or parameter.
    """
    return RobustStrategy(make_defense(defense, **params), seed=seed, audit=audit, **(fedavg or {}))



