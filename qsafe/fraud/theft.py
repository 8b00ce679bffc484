"""Model theft: the scoring API, its per-key query monitor and watermark, and the extraction attack against it.

**API** (:class:`ScoringAPI`): one of three outputs per query: ``score`` (the fraud probability, rounded to
``score_decimals``),
``decision`` (approve / review / decline bands) or ``label`` (fraud or not at the operating threshold).

**Query monitor** (:class:`QueryMonitor`): per API key, two sequential one-sided binomial tests against what
legitimate traffic looks like, over the key's whole stream and over its last ``window`` queries:

- *fraud-rate*: the share of queries the model declines. A merchant's real traffic is ~0.17% fraud; an
  extraction must show the model frauds to learn where they are, so its streams are fraud-heavy;
- *off-manifold*: the share of queries whose Mahalanobis distance to the legitimate reference data is beyond its
  99th percentile (the distance fitted on half the reference rows, the cut taken on the other half, and the rate
  tested against a 99% upper confidence bound of that 1%). Synthetic queries (perturbations, random points) land
  there.

A key is flagged at the first query where a test's p-value falls below ``alpha``; the expected rates under
legitimate traffic (and ``alpha``) are calibrated on reference data, and the false-alarm rate is measured on
simulated legitimate keys.

**Watermark** (:class:`ResponseWatermark`, after DAWN, Szyller et al. 2021): a keyed HMAC of (API key, query)
selects ``rate`` of the queries; for a selected query the model would approve, the API answers as if it were a
fraud (score ``1 - s``, decision decline, label fraud). It never turns a decline into an approval. The selected
queries of each key are its **trigger set**. A model extracted from those answers learns them; to test a
suspect model, compare its fraud scores on the trigger queries with its scores on the key's other approved
queries (one-sided Mann-Whitney U; Fisher's exact test when the suspect only gives decisions). The selection is a
PRF of the query that no model can see, so for a model that never learned from the watermarked answers trigger
and control queries are exchangeable and the test's false-positive rate is at most its significance level,
whatever the model.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qsafe import _labels
from qsafe.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MODES",
    "QueryMonitor",
    "ResponseWatermark",
    "ScoringAPI",
    "WatermarkTest",
    "check_watermark",
]

MODES = ("score", "decision", "label")
Scorer = Callable[["npt.NDArray[np.float32]"], "npt.NDArray[np.float64]"]


@dataclass
class ResponseWatermark:
    """Keyed selection of the answers to falsify (see the module doc). ``secret`` must stay with the API owner."""

    secret: bytes
    rate: float = 0.02
    triggers: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise InvalidInputError("the watermark secret must be at least 16 bytes")
        if not 0 < self.rate < 0.5:
            raise InvalidInputError(f"watermark rate must be in (0, 0.5), not {self.rate}")

    def selected(self, api_key: str, x: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which rows of ``x`` the HMAC selects for ``api_key``."""
        import numpy as np

        key = api_key.encode()
        rows = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty(len(rows), dtype=bool)
        limit = int(self.rate * 2**64)
        for i, row in enumerate(rows):
            tag = hmac.new(self.secret, _labels.WATERMARK_SELECT_LABEL + len(key).to_bytes(2, "big") + key
                           + row.tobytes(), hashlib.sha256).digest()
            out[i] = int.from_bytes(tag[:8], "big") < limit
        return out


class QueryMonitor:
    """Per-key sequential tests for extraction streams (see the module doc).

    Args:
        reference: legitimate transactions (features) the off-manifold test is calibrated on.
        fraud_rate: the share of queries legitimate traffic gets declined (model's decline rate at the real fraud
            rate). Measured by :func:`expected_decline_rate`.
        alpha: per-check significance; a key is flagged at the first p-value below it.
        window: the sliding window (the whole stream is tested too).
        threshold: the model's decline threshold.
        min_queries: no verdict before this many queries.
    """

    def __init__(self, reference: npt.NDArray[np.float32], *, fraud_rate: float, alpha: float = 1e-6,
                 window: int = 100, threshold: float = 0.5, min_queries: int = 10) -> None:
        import numpy as np

        if not 0 < fraud_rate < 1 or not 0 < alpha < 1 or window < 1:
            raise InvalidInputError("monitor needs a fraud rate and alpha in (0, 1) and a positive window")
        from scipy.stats import beta

        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or len(ref) < 4 * ref.shape[1]:
            raise InvalidInputError("the monitor's reference needs at least 4 rows per feature")
        fit, cal = ref[0::2], ref[1::2]  # the distance is fitted on one half and its cut calibrated on the other
        self.mean = fit.mean(0)
        cov = np.cov(fit, rowvar=False) + 1e-6 * np.eye(ref.shape[1])
        self.precision = np.linalg.inv(cov)
        dist = self._distance(cal)
        self.cut = float(np.quantile(dist, 0.99))
        # the tested rate is a 99% upper confidence bound of the legitimate exceedance rate (the 1% quantile of a
        # finite calibration set is itself uncertain; testing against 1% flagged legitimate keys)
        k, n = int((dist > self.cut).sum()), len(cal)
        self.off_rate = float(beta.ppf(0.99, k + 1, n - k))
        self.fraud_rate = fraud_rate
        self.alpha = alpha
        self.window = window
        self.threshold = threshold
        self.min_queries = min_queries
        self.streams: dict[str, list[tuple[bool, bool]]] = {}
        self.flagged: dict[str, dict[str, Any]] = {}

    def _distance(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        import numpy as np

        d = np.asarray(x, dtype=np.float64) - self.mean
        return np.asarray(np.einsum("ij,jk,ik->i", d, self.precision, d))

    def observe(self, api_key: str, x: npt.NDArray[np.float32], scores: npt.NDArray[np.float64]) -> bool:
        """Record a batch of queries of ``api_key`` (in order) with the model's scores; True once flagged.

        The tests run after every single query of the batch (vectorised), so the flag lands on the exact query.
        """
        import numpy as np
        from scipy.stats import binom

        stream = self.streams.setdefault(api_key, [])
        start = len(stream)
        marks = np.stack([np.asarray(scores, dtype=np.float64) >= self.threshold,
                          self._distance(x) > self.cut], axis=1)
        stream.extend((bool(d), bool(o)) for d, o in marks)
        if api_key in self.flagged:
            return True
        allm = np.asarray(stream, dtype=np.int64).reshape(-1, 2)
        cum = np.cumsum(allm, axis=0)
        pos = np.arange(start, len(stream))
        n_all = pos + 1
        lo = np.maximum(pos - self.window, -1)
        n_win = pos - lo
        for span in ("stream", f"last {self.window}"):
            hits = cum[pos] if span == "stream" else cum[pos] - np.where(lo[:, None] >= 0, cum[np.maximum(lo, 0)], 0)
            n = n_all if span == "stream" else n_win
            for idx, (test, rate) in enumerate((("fraud-rate", self.fraud_rate), ("off-manifold", self.off_rate))):
                p = np.where(hits[:, idx] > 0, binom.sf(hits[:, idx] - 1, n, rate), 1.0)
                bad = np.flatnonzero((p < self.alpha) & (n_all >= self.min_queries))
                if len(bad):
                    i = int(bad[0])
                    hit = {"query": int(pos[i] + 1), "test": test, "span": span, "hits": int(hits[i, idx]),
                           "of": int(n[i]), "expected_rate": rate, "p_value": float(p[i])}
                    old = self.flagged.get(api_key)
                    if old is None or hit["query"] < old["query"]:
                        self.flagged[api_key] = hit
        return api_key in self.flagged


def expected_decline_rate(scores_legit: npt.NDArray[np.float64], scores_fraud: npt.NDArray[np.float64],
                          fraud_rate: float, threshold: float = 0.5) -> float:
    """The share of real traffic (fraud at ``fraud_rate``) the model declines, from held-out scores per class."""
    import numpy as np

    return float((1 - fraud_rate) * np.mean(scores_legit >= threshold) + fraud_rate * np.mean(scores_fraud >= threshold))


class ScoringAPI:
    """The deployed model behind an API: answers queries per key, watches them, watermarks answers.

    Args:
        scorer: the model's fraud probability for a batch of feature rows.
        mode: ``score``, ``decision`` or ``label``.
        threshold: decline / fraud threshold. review: the review band's lower edge (``decision`` mode).
        monitor: the query monitor (optional). watermark: the answer watermark (optional).
    """

    def __init__(self, scorer: Scorer, *, mode: str = "score", threshold: float = 0.5, review: float = 0.2,
                 score_decimals: int = 3, monitor: QueryMonitor | None = None,
                 watermark: ResponseWatermark | None = None) -> None:
        if mode not in MODES:
            raise InvalidInputError(f"API mode must be one of {MODES}, not {mode!r}")
        if not 0 <= score_decimals <= 6:
            raise InvalidInputError("score_decimals must be 0..6")
        self.scorer, self.mode, self.threshold, self.review = scorer, mode, threshold, review
        self.decimals = score_decimals
        self.monitor, self.watermark = monitor, watermark
        self.queries: dict[str, int] = {}

    def _answer(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        if self.mode == "score":
            return np.round(scores, self.decimals)
        if self.mode == "label":
            return (scores >= self.threshold).astype(np.float64)
        return np.where(scores >= self.threshold, 2.0, np.where(scores >= self.review, 1.0, 0.0))

    def query(self, api_key: str, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Answer a batch of queries from ``api_key`` (watched by the monitor, watermarked)."""
        import numpy as np

        scores = np.asarray(self.scorer(x), dtype=np.float64)
        start = self.queries.get(api_key, 0)
        self.queries[api_key] = start + len(x)
        if self.monitor is not None:
            self.monitor.observe(api_key, x, scores)
        if self.watermark is not None:
            chosen = self.watermark.selected(api_key, x) & (scores < self.threshold)
            self.watermark.triggers.setdefault(api_key, []).extend(int(start + i) for i in np.flatnonzero(chosen))
            scores = np.where(chosen, 1.0 - scores, scores)
        return self._answer(scores)

    def fraud_of(self, answers: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which answers say fraud (decline in ``decision`` mode)."""
        import numpy as np

        if self.mode == "score":
            return np.asarray(answers >= self.threshold)
        return np.asarray(answers >= (2.0 if self.mode == "decision" else 1.0))


@dataclass(frozen=True)
class WatermarkTest:
    """The watermark test of one suspect model against one key's trigger set."""

    triggers: int
    trigger_fraud: int
    controls: int
    control_fraud: int
    statistic: str
    p_value: float
    alpha: float

    @property
    def identified(self) -> bool:
        return self.p_value < self.alpha

    def as_dict(self) -> dict[str, Any]:
        return {"triggers": self.triggers, "trigger_fraud": self.trigger_fraud, "controls": self.controls,
                "control_fraud": self.control_fraud, "test": self.statistic, "p_value": self.p_value,
                "identified": self.identified}


def check_watermark(suspect_score: npt.NDArray[Any], queries_selected: npt.NDArray[np.bool_],
                    victim_fraud: npt.NDArray[np.bool_], *, alpha: float = 1e-3, cut: float = 0.5,
                    queries: npt.NDArray[Any] | None = None) -> WatermarkTest:
    """Did the suspect learn this key's watermarked answers?

    Args:
        suspect_score: the suspect's fraud score on each of the key's logged queries (higher = more fraud), or
            its decisions (booleans) when it only answers decisions.
        queries_selected: which queries the watermark selected (the HMAC, recomputed from the secret).
        victim_fraud: the deployed model's own decision on each (only the queries it approved are compared).
        alpha: significance: the bound on the test's false-positive rate for any model that never learned from
            the watermarked answers. cut: the suspect's decision threshold (for the counts reported).
        queries: the logged query rows. When given, each distinct row counts once: the selection is a function of
            the row, so a row sent twice is one trial, not two (counting repeats inflates the evidence and breaks
            the bound on the false-positive rate: a model with idiosyncratic scores on a few repeated rows was
            "identified" at p 6e-4 in one run before this).

    Returns:
        Counts and the one-sided p-value: Mann-Whitney U on scores (trigger above control), or Fisher's exact test
        on decisions.
    """
    import numpy as np
    from scipy.stats import fisher_exact, mannwhitneyu

    score = np.asarray(suspect_score)
    if queries is not None:
        rows = np.ascontiguousarray(queries)
        if len(rows) != len(score):
            raise InvalidInputError("queries and scores must have one row each per logged query")
        _, first = np.unique(rows.reshape(len(rows), -1), axis=0, return_index=True)
        keep = np.sort(first)
        score = score[keep]
        queries_selected = np.asarray(queries_selected)[keep]
        victim_fraud = np.asarray(victim_fraud)[keep]
    decisions = score.dtype == bool
    fraud = score if decisions else score >= cut
    approved = ~np.asarray(victim_fraud, dtype=bool)
    trig = approved & np.asarray(queries_selected, dtype=bool)
    ctrl = approved & ~np.asarray(queries_selected, dtype=bool)
    a, b = int((fraud & trig).sum()), int(trig.sum())
    c, d = int((fraud & ctrl).sum()), int(ctrl.sum())
    if b == 0 or d == 0:
        p = 1.0
    elif decisions:
        p = float(fisher_exact([[a, b - a], [c, d - c]], alternative="greater")[1])
    else:
        p = float(mannwhitneyu(score[trig].astype(float), score[ctrl].astype(float), alternative="greater").pvalue)
    return WatermarkTest(b, a, d, c, "fisher-exact" if decisions else "mann-whitney-u",
                         p if math.isfinite(p) else 1.0, alpha)


def summarize_monitor(monitor: QueryMonitor, keys: Mapping[str, Any]) -> dict[str, Any]:
    """The monitor's verdict for each key in ``keys``."""
    return {k: monitor.flagged.get(k) for k in keys}
