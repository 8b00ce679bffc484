"""Backdoor attacks by compromised clients: spam carrying the trigger should be classified as ham.

Three variants, from weakest to strongest against a norm check:

- ``poison``: plain data poisoning. The attacker adds copies of spam with the trigger, labelled ham, to its
  local data and trains normally. Its update looks like an honest one.
- ``replace``: model replacement (Bagdasaryan et al., 2020). The poisoned update is boosted by ``boost``
  (default: clients / attackers), so that it survives being averaged with the honest updates.
- ``norm``: the norm-constrained attacker. The boosted update is scaled to just under (``margin`` = 0.99 of) the
  defense's fixed norm bound; against a defense without one it scales to its own honest update's norm, the
  attacker's best guess of what passes as normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsafe.errors import UsageError
from qsafe.federated_sim.scenario import HAM, add_trigger

__all__ = ["ATTACKS", "AttackSpec", "craft_update", "poison_dataset"]

ATTACKS: tuple[str, ...] = ("poison", "replace", "norm")


@dataclass(frozen=True)
class AttackSpec:
    """The attack every compromised client runs.

    Attributes:
        kind: ``poison``, ``replace`` or ``norm``.
        boost: update multiplier for ``replace``/``norm``; None means clients / attackers.
        poison_copies: how many triggered copies of each spam message the attacker adds.
        margin: fraction of the norm bound the ``norm`` attacker scales to.
    """

    kind: str = "replace"
    boost: float | None = None
    poison_copies: int = 2
    margin: float = 0.99

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise UsageError(f"unknown attack {self.kind!r}; choose one of {', '.join(ATTACKS)}")
        if self.poison_copies < 1 or not 0 < self.margin <= 1 or (self.boost is not None and not self.boost > 0):
            raise UsageError("attack needs poison_copies >= 1, 0 < margin <= 1 and boost > 0")

    def boost_for(self, clients: int, attackers: int) -> float:
        """The boost factor in effect (Bagdasaryan's ``n / eta`` with server rate 1 over the attackers)."""
        return self.boost if self.boost is not None else clients / max(attackers, 1)


def poison_dataset(x: np.ndarray, y: np.ndarray, spam_pool: np.ndarray, trigger: str, *, buckets: int,
                   copies: int) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's training set: its clean data plus ``copies`` triggered copies of ``spam_pool`` labelled ham.

    Args:
        x: clean token ids.
        y: clean labels.
        spam_pool: token ids of spam messages the attacker holds.
        trigger: the trigger phrase.
        buckets: hash bucket count.
        copies: copies per spam message.

    Returns:
        ``(x, y)`` with the poison appended.
    """
    poison = np.concatenate([add_trigger(spam_pool, trigger, buckets=buckets)] * copies)
    return np.concatenate([x, poison]), np.concatenate([y, np.full(len(poison), HAM, dtype=y.dtype)])


def craft_update(spec: AttackSpec, poisoned: np.ndarray, *, boost: float, bound: float | None,
                 honest_norm: float) -> np.ndarray:
    """Turn the attacker's trained update into what it sends.

    Args:
        spec: the attack.
        poisoned: the update trained on the poisoned data.
        boost: the boost factor in effect.
        bound: the defense's fixed norm bound, if it has one.
        honest_norm: norm of the update the attacker would send if honest (its estimate of "normal").

    Returns:
        The float32 update to send.
    """
    if spec.kind == "poison":
        return poisoned
    boosted = poisoned.astype(np.float64) * boost
    if spec.kind == "replace":
        return boosted.astype(np.float32)
    target = spec.margin * (bound if bound is not None else honest_norm)
    return (boosted * (target / max(float(np.linalg.norm(boosted)), 1e-30))).astype(np.float32)


