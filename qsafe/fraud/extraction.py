"""The model-extraction attack against the scoring API: query streams and surrogate models.

Query streams (what the attacker sends):

- ``real``: real transactions the attacker holds (the holdout pool, at the sample's 9.1% fraud rate): the
  strongest natural-data attacker, e.g. a fraud ring replaying its own and stolen transactions;
- ``real-natural``: real transactions at the real fraud rate (0.172%), what a merchant's traffic looks like;
- ``synthetic``: Gaussian perturbations of a few real seed transactions (half fraud, half legitimate), a
  Jacobian-free variant of the augmentation of Papernot et al. (2017) for tabular data.

Surrogates (scikit-learn MLP, one hidden layer of 64): ``score`` answers are regressed in logit space and
thresholded at 0.5; ``decision`` answers (three bands) and ``label`` answers are classified.
The copy is scored two ways on the test split: F1 against the true labels (task F1), and F1 against the deployed
model's own decisions (fidelity F1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qsafe.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["STREAMS", "Surrogate", "f1", "fit_surrogate", "query_stream"]

STREAMS = ("real", "real-natural", "synthetic")


def query_stream(kind: str, pool_x: npt.NDArray[np.float32], pool_y: npt.NDArray[np.int64], n: int, seed: int = 0,
                 *, natural_rate: float = 492 / 284_807, seeds: int = 20, spread: float = 0.75
                 ) -> npt.NDArray[np.float32]:
    """``n`` attacker queries of the given kind drawn from (or around) the attacker's pool.

    Raises:
        InvalidInputError: an unknown kind, or a pool without both classes.
    """
    import numpy as np

    if kind not in STREAMS:
        raise InvalidInputError(f"query stream must be one of {STREAMS}, not {kind!r}")
    rng = np.random.default_rng(seed)
    legit, fraud = np.flatnonzero(pool_y == 0), np.flatnonzero(pool_y == 1)
    if not len(legit) or not len(fraud):
        raise InvalidInputError("the attacker's pool needs both classes")
    if kind == "real":
        order = rng.permutation(len(pool_y))
        idx = np.concatenate([order, rng.integers(0, len(pool_y), max(0, n - len(order)))])[:n]
        return np.asarray(pool_x[idx], dtype=np.float32)
    if kind == "real-natural":
        is_fraud = rng.random(n) < natural_rate
        idx = np.where(is_fraud, rng.choice(fraud, n), rng.choice(legit, n))
        return np.asarray(pool_x[idx], dtype=np.float32)
    base = np.concatenate([rng.choice(fraud, seeds // 2, replace=False), rng.choice(legit, seeds - seeds // 2,
                                                                                    replace=False)])
    centers = pool_x[rng.choice(base, n)]
    scale = spread * pool_x.std(0)
    return np.asarray(centers + rng.normal(size=centers.shape) * scale, dtype=np.float32)


@dataclass(frozen=True)
class Surrogate:
    """The attacker's copy: a fraud score (higher = more fraud-like) and the decision at its threshold."""

    score: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
    cut: float

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        import numpy as np

        return np.asarray(self.score(x) >= self.cut)


def fit_surrogate(x: npt.NDArray[np.float32], answers: npt.NDArray[np.float64], mode: str, *, seed: int = 0,
                  threshold: float = 0.5) -> Surrogate:
    """Train the attacker's copy on (query, answer) pairs."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if mode == "score":
            p = np.clip(answers, 1e-3, 1 - 1e-3)
            reg = MLPRegressor(hidden_layer_sizes=(64,), max_iter=400, random_state=seed).fit(x, np.log(p / (1 - p)))
            return Surrogate(lambda q: np.asarray(reg.predict(q), dtype=np.float64),
                             float(np.log(threshold / (1 - threshold))))
        labels = answers.astype(int)
        fraud_class = 2 if mode == "decision" else 1
        if fraud_class not in labels or len(np.unique(labels)) < 2:
            constant = 1.0 if len(labels) and bool(np.all(labels == fraud_class)) else 0.0
            return Surrogate(lambda q: np.full(len(q), constant), 0.5)
        clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=seed).fit(x, labels)
        column = list(clf.classes_).index(fraud_class)
        return Surrogate(lambda q: np.asarray(clf.predict_proba(q)[:, column], dtype=np.float64), 0.5)


def f1(pred: npt.NDArray[np.bool_], truth: npt.NDArray[Any]) -> float:
    """F1 of fraud decisions against ``truth`` (0 when nothing is predicted or present)."""
    import numpy as np

    truth = np.asarray(truth, dtype=bool)
    tp = int((pred & truth).sum())
    denom = int(pred.sum()) + int(truth.sum())
    return 2.0 * tp / denom if denom else 0.0
