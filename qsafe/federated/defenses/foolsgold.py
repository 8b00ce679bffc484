"""FoolsGold (Fung et al., 2020): down-weight clients whose update *histories* are too similar to each other.

Sybils pushing the same backdoor keep sending similar updates, so their summed histories stay aligned while
honest clients with different data drift apart. Weights follow the paper's Algorithm 1: cosine similarity of
histories, "pardoning" of honest clients similar to a sybil, ``1 - max similarity``, rescaled so the largest is
1 and passed through the logit ``ln(w / (1 - w)) + 0.5`` (kappa = 1), clipped to [0, 1]. The aggregate is the
weight-normalised sum, so the learning rate does not shrink with the weights.

Known limit (measured in the docs): with IID honest clients, honest histories are also very similar, and
FoolsGold down-weights honest clients as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.federated.defenses.base import (
    ACCEPTED,
    DOWN_WEIGHTED,
    REJECTED,
    AggregateResult,
    ClientDecision,
    ClientUpdate,
    Strategy,
    stack,
)

__all__ = ["FoolsGold", "foolsgold_weights"]


def foolsgold_weights(histories: np.ndarray) -> np.ndarray:
    """FoolsGold weights from the clients' summed update histories.

    Args:
        histories: ``(n, d)``, one summed history per client.

    Returns:
        ``(n,)`` weights in [0, 1].
    """
    n = histories.shape[0]
    unit = histories / np.maximum(np.linalg.norm(histories, axis=1, keepdims=True), 1e-300)
    cs = unit @ unit.T - np.eye(n)
    maxcs = cs.max(axis=1)
    # pardoning: an honest client that happens to resemble a sybil keeps its weight
    ratio = maxcs[:, None] / np.where(maxcs[None, :] == 0, 1.0, maxcs[None, :])
    cs = np.where(maxcs[:, None] < maxcs[None, :], cs * ratio, cs)
    wv = np.clip(1.0 - cs.max(axis=1), 0.0, 1.0)
    if wv.max() == 0:
        return np.asarray(wv)
    wv = wv / wv.max()
    wv[wv == 1.0] = 0.99
    with np.errstate(divide="ignore"):
        wv = np.log(wv / (1.0 - wv)) + 0.5
    wv[np.isinf(wv) & (wv > 0)] = 1.0
    return np.asarray(np.clip(np.nan_to_num(wv, nan=0.0, neginf=0.0), 0.0, 1.0))


class FoolsGold(Strategy):
    """Stateful FoolsGold: keeps each client's summed update across rounds."""

    name = "foolsgold"

    def __init__(self) -> None:
        self._history: dict[int, np.ndarray] = {}

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        matrix = stack(updates)
        for update, row in zip(updates, matrix):
            self._history[update.client] = self._history.get(update.client, 0.0) + row
        weights = foolsgold_weights(np.stack([self._history[u.client] for u in updates]))
        total = weights.sum()
        shares = weights / total if total > 0 else weights
        decisions = tuple(
            ClientDecision(u.client, REJECTED if w == 0 else ACCEPTED if w >= 0.99 else DOWN_WEIGHTED, float(s),
                           f"foolsgold weight {w:.4g}")
            for u, w, s in zip(updates, weights, shares)
        )
        return AggregateResult((shares @ matrix).astype(np.float32), decisions)
