"""Membership inference audit: the loss-threshold attack and LiRA with shadow models, beside the DP bound.

The audit plays the membership game many times at once (Carlini et al., "Membership Inference Attacks From First
Principles", 2022): ``n_models`` models are trained with the audited training procedure, each on a random half of
the audit data, so every row is a member of about half the models. Each model in turn is the target; the others
are the attacker's shadow models (LiRA "online", one shared variance per class of membership). Every (target, row)
pair is one trial, which gives ``n_models x rows`` trials instead of ``rows`` and tightens the estimates enough to
read an advantage of a few hundredths.

Statistics: the logit-scaled confidence in the true label, ``phi = logit(p(y | x))`` (``z`` for a fraud, ``-z``
for a legitimate row, ``z`` the model's logit). The loss attack thresholds ``phi`` (loss is monotone in it);
LiRA scores the likelihood ratio of ``phi`` under the row's "in" and "out" Gaussians.

Metrics (each overall and on frauds only): ROC AUC, membership advantage ``max_t (TPR - FPR)``, TPR at 1% FPR.
The (epsilon, delta)-DP bound beside them: no attack exceeds ``TPR <= e^eps FPR + delta`` (and its mirror), so
``advantage <= (e^eps - 1 + 2 delta) / (e^eps + 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qsafe.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from qsafe.fraud.training import TrainConfig

__all__ = [
    "AttackMetrics",
    "MembershipAudit",
    "attack_metrics",
    "dp_advantage_bound",
    "dp_tpr_bound",
    "membership_audit",
]

Progress = Callable[[str], None]


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """The largest membership advantage any attack can have against an (epsilon, delta)-DP mechanism."""
    e = math.exp(epsilon)
    return min(1.0, (e - 1 + 2 * delta) / (e + 1))


def dp_tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """The largest TPR at false-positive rate ``fpr`` under (epsilon, delta)-DP (hypothesis-testing bound)."""
    e = math.exp(epsilon)
    return min(1.0, e * fpr + delta, 1 - (1 - delta - fpr) / e)


@dataclass(frozen=True)
class AttackMetrics:
    """One attack's success: AUC, advantage (max TPR - FPR), TPR at 1% FPR, over ``trials`` (member, non-member)."""

    auc: float
    advantage: float
    tpr_at_1pct_fpr: float
    trials: int
    members: int
    roc: tuple[tuple[float, ...], tuple[float, ...]] = field(default=((), ()), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"auc": self.auc, "advantage": self.advantage, "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
                "trials": self.trials, "members": self.members}


def attack_metrics(scores: npt.NDArray[np.float64], members: npt.NDArray[np.bool_], *, points: int = 200
                   ) -> AttackMetrics:
    """AUC, advantage and TPR at 1% FPR of membership scores (higher = "member").

    Raises:
        InvalidInputError: no members or no non-members.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    members = np.asarray(members, dtype=bool)
    if members.all() or not members.any():
        raise InvalidInputError("membership metrics need both members and non-members")
    fpr, tpr, _ = roc_curve(members, scores)
    adv = float(np.max(tpr - fpr))
    at1 = float(np.max(tpr[fpr <= 0.01])) if np.any(fpr <= 0.01) else 0.0
    grid = np.unique(np.concatenate([np.logspace(-4, 0, points), np.linspace(0, 1, points)]))
    curve = (tuple(float(v) for v in grid), tuple(float(v) for v in np.interp(grid, fpr, tpr)))
    return AttackMetrics(auc=float(roc_auc_score(members, scores)), advantage=adv, tpr_at_1pct_fpr=at1,
                         trials=len(members), members=int(members.sum()), roc=curve)


@dataclass
class MembershipAudit:
    """The audit's results: per attack, overall and on frauds; the DP bound when the procedure is DP."""

    attacks: dict[str, dict[str, AttackMetrics]]
    n_models: int
    rows: int
    epsilon: float | None
    delta: float | None
    config: dict[str, Any]

    @property
    def bound(self) -> dict[str, float] | None:
        if self.epsilon is None or self.delta is None:
            return None
        return {"advantage": dp_advantage_bound(self.epsilon, self.delta),
                "tpr_at_1pct_fpr": dp_tpr_bound(self.epsilon, self.delta, 0.01)}

    def worst(self, subset: str, metric: str) -> float:
        """The largest value of ``metric`` over the attacks on ``subset`` (``all`` or ``frauds``)."""
        return max(float(getattr(a[subset], metric)) for a in self.attacks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"attacks": {name: {s: m.as_dict() for s, m in by.items()} for name, by in self.attacks.items()},
                "models": self.n_models, "rows": self.rows, "epsilon": self.epsilon, "delta": self.delta,
                "dp_bound": self.bound, "training": self.config,
                "worst": {s: {m: self.worst(s, m) for m in ("auc", "advantage", "tpr_at_1pct_fpr")}
                          for s in ("all", "frauds")}}


def _membership(n_models: int, rows: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Each row is a member of exactly half of the models (chosen at random per row)."""
    import numpy as np

    out = np.zeros((n_models, rows), dtype=bool)
    half = n_models // 2
    for i in range(rows):
        out[rng.permutation(n_models)[:half], i] = True
    return out


def _lira(phi: npt.NDArray[np.float64], member: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Online LiRA scores, one per (target model, row): leave the target out of the in/out statistics."""
    import numpy as np

    m = phi.shape[0]
    scores = np.empty_like(phi)
    for t in range(m):
        others = np.arange(m) != t
        ph, mb = phi[others], member[others]
        n_in, n_out = mb.sum(0), (~mb).sum(0)
        mu_in = np.where(mb, ph, 0).sum(0) / np.maximum(n_in, 1)
        mu_out = np.where(~mb, ph, 0).sum(0) / np.maximum(n_out, 1)
        var_in = float(np.sum(np.where(mb, (ph - mu_in) ** 2, 0)) / max(int(n_in.sum()) - 1, 1))
        var_out = float(np.sum(np.where(~mb, (ph - mu_out) ** 2, 0)) / max(int(n_out.sum()) - 1, 1))
        sd_in, sd_out = math.sqrt(max(var_in, 1e-12)), math.sqrt(max(var_out, 1e-12))
        x = phi[t]
        scores[t] = (-0.5 * ((x - mu_in) / sd_in) ** 2 - math.log(sd_in)) - \
                    (-0.5 * ((x - mu_out) / sd_out) ** 2 - math.log(sd_out))
    return scores


def _train_phi(task: tuple[Any, Any, Any, Any]) -> tuple[Any, float | None]:
    """Worker: train one audit model on its members; return its phi for every row and its epsilon."""
    from qsafe.fraud.training import train_model

    x, y, member, cfg = task
    import numpy as np

    model = train_model(x[member], y[member], cfg)
    phi = np.where(y == 1, 1.0, -1.0) * model.logits(x)
    return phi, model.certificate.epsilon if model.certificate is not None else None


def membership_audit(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], config: TrainConfig, *,
                     n_models: int = 16, seed: int = 0, workers: int = 1,
                     progress: Progress | None = None) -> MembershipAudit:
    """Audit a training procedure for membership leakage on ``(x, y)``.

    Args:
        x, y: the audit data (members and non-members are drawn from it).
        config: the training procedure to audit (the released one: same q, steps, sigma, clip -> same epsilon).
        n_models: models trained, each on a random half of the rows (at least 4, even).
        seed: membership draws and model initialisation.
        workers: processes training models at once.
        progress: called with a short line after each model.

    Returns:
        Loss-threshold and LiRA metrics, overall and on frauds, with the DP bound.

    Raises:
        InvalidInputError: fewer than 4 models, an odd number, or data without both classes.
    """
    import dataclasses

    import numpy as np

    from qsafe.fraud._parallel import pmap

    if n_models < 4 or n_models % 2:
        raise InvalidInputError("the membership audit needs an even number of models, at least 4")
    rng = np.random.default_rng(seed)
    member = _membership(n_models, len(y), rng)
    tasks = [(x, y, member[m], dataclasses.replace(config, seed=seed * 1000 + m)) for m in range(n_models)]
    done = [0]

    def tick(_: int, __: Any) -> None:
        done[0] += 1
        if progress:
            progress(f"model {done[0]}/{n_models}")

    results = pmap(_train_phi, tasks, workers, tick)
    phi = np.stack([r[0] for r in results])
    epsilons = [r[1] for r in results if r[1] is not None]
    eps = max(epsilons) if epsilons else None
    frauds = np.broadcast_to(y == 1, member.shape)
    attacks: dict[str, dict[str, AttackMetrics]] = {}
    for name, score in (("loss", phi), ("lira", _lira(phi, member))):
        attacks[name] = {"all": attack_metrics(score.ravel(), member.ravel()),
                         "frauds": attack_metrics(score[frauds], member[frauds])}
    from qsafe.fraud.training import config_dict

    return MembershipAudit(attacks=attacks, n_models=n_models, rows=len(y), epsilon=eps,
                           delta=config.delta if config.target_epsilon is not None else None,
                           config=config_dict(config))
