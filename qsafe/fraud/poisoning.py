"""Label-flip poisoning: attacks, detectors, the signed audit, remediation, and the gate training goes through.

Attacks (:func:`flip_random`, :func:`flip_targeted`) hide frauds by relabelling them legitimate: uniformly, or
spent on one class of frauds (the highest amounts).

Detectors, each returning the rows it suspects:

- **confident learning** (Northcutt et al. 2021): out-of-fold probabilities from a logistic regression; a row
  labelled legitimate whose fraud probability reaches the average confidence of the fraud-labelled rows is a
  likely hidden fraud (and the mirror for fake frauds);
- **class-conditional Isolation Forest**: one forest per label; a row is suspect when it is more typical of the
  other class than of its own (score difference in the top ``if_quantile`` of its class);
- **k-nearest-neighbour label disagreement**: at least ``knn_min_fraction`` of its ``k`` neighbours carry the
  other label.

Then a **slice search** asks where the *confirmed* hidden frauds (legitimate-labelled rows that both the
k-NN and the Isolation Forest detectors call fraud) concentrate: for every feature decile, their share among all
the fraud-looking rows of the slice (confirmed suspects plus fraud-labelled rows), against the share over the
whole data (one-sided binomial test, Bonferroni over all slices). A targeted attack shows up as a slice in which
frauds are labelled legitimate far more often than anywhere else.

Remediation relabels the confirmed hidden frauds and drops the other legitimate-labelled rows of each flagged
slice (in a slice where labels were shown to be attacked, a legitimate label is no longer evidence).

Verdict: **fail** when confident learning finds more hidden frauds than ``max_hidden_fraction`` (or more fake
frauds than ``max_fake_fraction``) of the fraud labels, or when a slice is significant at ``slice_alpha``. These
limits were set on the clean sample (no false alarm on it; docs/fraud_pipeline.md has the figures); a deployment
calibrates them on its own audited history. The audit is signed over the dataset's Merkle root; training refuses
data without a passing audit unless the loud override is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qsafe import _labels
from qsafe.errors import DataAuditError, FormatError, InvalidInputError, SignatureError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from qsafe.fraud.dataset import DatasetManifest
    from qsafe.keys import PrivateKey, PublicKey

__all__ = [
    "AuditParams",
    "Detection",
    "PoisoningAudit",
    "Slice",
    "audit_labels",
    "flip_random",
    "flip_targeted",
    "remediate",
    "require_passing_audit",
    "sign_audit",
    "verify_audit",
]

AUDIT_FORMAT = "qsafe-poisoning-audit/v1"
UNSAFE_OVERRIDE_FLAG = "--unsafe-train-on-failed-audit"


# --- attacks ----------------------------------------------------------------------------------------------------
def flip_random(labels: npt.NDArray[np.int64], fraction: float, seed: int = 0) -> npt.NDArray[np.bool_]:
    """Choose ``fraction`` of the fraud labels uniformly to relabel legitimate; returns the flipped rows.

    Raises:
        InvalidInputError: a fraction outside [0, 1].
    """
    import numpy as np

    if not 0 <= fraction <= 1:
        raise InvalidInputError(f"flip fraction must be in [0, 1], not {fraction}")
    frauds = np.flatnonzero(labels == 1)
    chosen = np.random.default_rng(seed).choice(frauds, round(fraction * len(frauds)), replace=False)
    out = np.zeros(len(labels), dtype=bool)
    out[chosen] = True
    return out


def flip_targeted(labels: npt.NDArray[np.int64], amount: npt.NDArray[np.float64], budget: float = 0.1
                  ) -> npt.NDArray[np.bool_]:
    """Spend a budget of ``budget`` x (fraud labels) flips on the frauds with the highest amounts.

    Returns:
        The flipped rows (all frauds at or above the budget's amount cut-off, ties broken by row order).
    """
    import numpy as np

    if not 0 <= budget <= 1:
        raise InvalidInputError(f"flip budget must be in [0, 1], not {budget}")
    frauds = np.flatnonzero(labels == 1)
    n = round(budget * len(frauds))
    order = frauds[np.argsort(-amount[frauds], kind="stable")][:n]
    out = np.zeros(len(labels), dtype=bool)
    out[order] = True
    return out


# --- detectors --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditParams:
    """Detector and verdict parameters (defaults fixed before looking at any audit result)."""

    folds: int = 5
    knn_k: int = 10
    knn_min_fraction: float = 0.2
    if_trees: int = 200
    if_quantile: float = 0.02
    slice_bins: int = 10
    slice_alpha: float = 1e-5
    max_hidden_fraction: float = 0.03
    max_fake_fraction: float = 0.10
    seed: int = 0


@dataclass(frozen=True)
class Detection:
    """One detector's suspects: ``hidden`` (legitimate-labelled rows that look like fraud) and ``fake``."""

    name: str
    hidden: npt.NDArray[np.bool_]
    fake: npt.NDArray[np.bool_]

    @property
    def suspects(self) -> npt.NDArray[np.bool_]:
        return self.hidden | self.fake


def confident_learning(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], params: AuditParams) -> Detection:
    """Confident learning with out-of-fold logistic-regression probabilities (per-class thresholds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(min(params.folds, int(min((y == 0).sum(), (y == 1).sum()))), shuffle=True,
                            random_state=params.seed)
    p = cross_val_predict(LogisticRegression(max_iter=3000), x, y, cv=folds, method="predict_proba")[:, 1]
    t_fraud, t_legit = float(p[y == 1].mean()), float((1 - p[y == 0]).mean())
    return Detection("confident_learning", (y == 0) & (p >= t_fraud), (y == 1) & (1 - p >= t_legit))


def class_conditional_iforest(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], params: AuditParams
                              ) -> Detection:
    """One Isolation Forest per label; suspect = more typical of the other class than of its own (top quantile)."""
    import numpy as np
    from sklearn.ensemble import IsolationForest

    scores = [IsolationForest(n_estimators=params.if_trees, random_state=params.seed).fit(x[y == c]).score_samples(x)
              for c in (0, 1)]
    toward = np.where(y == 0, scores[1] - scores[0], scores[0] - scores[1])  # "other minus own" typicality
    flags = np.zeros(len(y), dtype=bool)
    for c in (0, 1):
        own = y == c
        cut = np.quantile(toward[own], 1 - params.if_quantile)
        flags |= own & (toward > max(cut, 0.0))
    return Detection("class_conditional_iforest", flags & (y == 0), flags & (y == 1))


def knn_disagreement(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], params: AuditParams) -> Detection:
    """At least ``knn_min_fraction`` of the ``knn_k`` nearest neighbours carry the other label."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    k = min(params.knn_k, len(y) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    other = np.asarray(y[idx[:, 1:]] != y[:, None]).mean(1)
    flag = other >= params.knn_min_fraction
    return Detection("knn_disagreement", flag & (y == 0), flag & (y == 1))


DETECTORS = {"confident_learning": confident_learning, "class_conditional_iforest": class_conditional_iforest,
             "knn_disagreement": knn_disagreement}


@dataclass(frozen=True)
class Slice:
    """A feature range where labelled-legitimate suspects concentrate."""

    feature: str
    low: float
    high: float
    rows: int
    hidden: int
    fraud_labelled: int
    share: float
    overall_share: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "range": [self.low, self.high], "rows": self.rows,
                "hidden_fraud_suspects": self.hidden, "fraud_labelled": self.fraud_labelled,
                "hidden_share": self.share, "overall_hidden_share": self.overall_share, "p_value": self.p_value}


def _bins(column: npt.NDArray[Any], reference: npt.NDArray[Any], bins: int) -> tuple[Any, Any]:
    import numpy as np

    edges = np.quantile(reference, np.linspace(0, 1, bins + 1))
    return np.clip(np.searchsorted(edges, column, side="right") - 1, 0, bins - 1), edges


def find_slices(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], hidden: npt.NDArray[np.bool_],
                feature_names: Sequence[str], params: AuditParams) -> list[Slice]:
    """Feature deciles where the hidden-fraud share is significantly above the overall share (Bonferroni)."""
    from scipy.stats import binom

    fraud = y == 1
    total = int(hidden.sum() + fraud.sum())
    if total == 0 or not hidden.any():
        return []
    overall = float(hidden.sum()) / total
    tests = x.shape[1] * params.slice_bins
    found: list[Slice] = []
    for j in range(x.shape[1]):
        b, edges = _bins(x[:, j], x[y == 0, j], params.slice_bins)
        for k in range(params.slice_bins):
            inside = b == k
            h, f = int((hidden & inside).sum()), int((fraud & inside).sum())
            if h == 0:
                continue
            p = float(binom.sf(h - 1, h + f, overall))
            if p * tests < params.slice_alpha:
                found.append(Slice(feature_names[j], float(edges[k]), float(edges[k + 1]), int(inside.sum()), h, f,
                                   h / (h + f), overall, min(1.0, p * tests)))
    return sorted(found, key=lambda s: s.p_value)


def in_slices(x: npt.NDArray[np.float32], slices: Sequence[Slice], feature_names: Sequence[str]
              ) -> npt.NDArray[np.bool_]:
    """Rows inside any of ``slices`` (ranges closed at both ends)."""
    import numpy as np

    out = np.zeros(len(x), dtype=bool)
    for s in slices:
        col = x[:, list(feature_names).index(s.feature)]
        out |= (col >= s.low) & (col <= s.high)
    return out


# --- the audit --------------------------------------------------------------------------------------------------
@dataclass
class PoisoningAudit:
    """The audit result. ``suspects``/``quarantine`` are row indices (0-based, file order)."""

    verdict: str
    reasons: list[str]
    rows: int
    fraud_labels: int
    detectors: dict[str, dict[str, int]]
    hidden_suspects: list[int]
    confirmed_hidden: list[int]
    fake_suspects: list[int]
    slices: list[Slice]
    quarantine: list[int]
    params: AuditParams
    dataset: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def predicate(self) -> dict[str, Any]:
        import dataclasses

        return {"format": AUDIT_FORMAT, "dataset": self.dataset, "verdict": self.verdict, "passed": self.passed,
                "reasons": list(self.reasons), "rows": self.rows, "fraud_labels": self.fraud_labels,
                "detectors": self.detectors, "suspect_rows": {"hidden_fraud": self.hidden_suspects,
                                                              "hidden_fraud_confirmed": self.confirmed_hidden,
                                                              "fake_fraud": self.fake_suspects},
                "slices": [s.as_dict() for s in self.slices], "quarantine_rows": self.quarantine,
                "params": dataclasses.asdict(self.params), **self.extra}


def audit_labels(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], feature_names: Sequence[str], *,
                 params: AuditParams | None = None, dataset: str = "") -> PoisoningAudit:
    """Run every detector and the slice search on labelled data and give a verdict.

    Args:
        x: features (rows, features). y: labels (0/1). feature_names: one name per column (slices name them).
        params: detector and verdict parameters. dataset: the dataset digest the audit is about.

    Returns:
        The audit (verdict ``pass`` or ``fail`` with every reason).

    Raises:
        InvalidInputError: fewer than ``folds`` rows of a class, or mismatched shapes.
    """
    import numpy as np

    prm = params or AuditParams()
    if len(x) != len(y) or x.ndim != 2 or x.shape[1] != len(feature_names):
        raise InvalidInputError("features, labels and feature names do not match")
    n_fraud, n_legit = int((y == 1).sum()), int((y == 0).sum())
    if min(n_fraud, n_legit) < max(2, prm.folds):
        raise InvalidInputError(f"the audit needs at least {max(2, prm.folds)} rows of each class")
    dets = {name: fn(x, y, prm) for name, fn in DETECTORS.items()}
    cl, knn, cif = dets["confident_learning"], dets["knn_disagreement"], dets["class_conditional_iforest"]
    hidden = knn.hidden | cl.hidden            # relabelled by remediation
    confirmed = knn.hidden & cif.hidden        # two detectors agree: where the slice search looks
    fake = cl.fake
    slices = find_slices(x, y, confirmed, feature_names, prm)
    reasons = []
    for what, count, frac in (("legitimate-labelled rows that are confidently fraud", int(cl.hidden.sum()),
                               prm.max_hidden_fraction),
                              ("fraud-labelled rows that are confidently legitimate", int(cl.fake.sum()),
                               prm.max_fake_fraction)):
        if count > frac * n_fraud:
            reasons.append(f"confident learning finds {count} {what} (limit {frac:g} x {n_fraud} fraud labels "
                           f"= {frac * n_fraud:.1f})")
    for s in slices:
        reasons.append(f"hidden frauds concentrate where {s.feature} is in [{s.low:.4g}, {s.high:.4g}]: {s.hidden} "
                       f"legitimate-labelled rows that two detectors call fraud, beside {s.fraud_labelled} fraud labels "
                       f"(share {s.share:.2f} vs {s.overall_share:.2f} overall, corrected p = {s.p_value:.1e})")
    quarantine = in_slices(x, slices, feature_names) & (y == 0)
    summary = {name: {"hidden_fraud": int(d.hidden.sum()), "fake_fraud": int(d.fake.sum())} for name, d in dets.items()}
    return PoisoningAudit(
        verdict="fail" if reasons else "pass", reasons=reasons, rows=len(y), fraud_labels=n_fraud,
        detectors=summary, hidden_suspects=[int(i) for i in np.flatnonzero(hidden)],
        confirmed_hidden=[int(i) for i in np.flatnonzero(confirmed)],
        fake_suspects=[int(i) for i in np.flatnonzero(fake)], slices=slices,
        quarantine=[int(i) for i in np.flatnonzero(quarantine)], params=prm, dataset=dataset)


def remediate(y: npt.NDArray[np.int64], audit: PoisoningAudit) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Relabel the confirmed hidden frauds and drop the other legitimate-labelled rows of each flagged slice.

    Only rows that two independent detectors call fraud are relabelled (a broader relabelling turns legitimate
    outliers into frauds and costs precision); fraud-labelled suspects are reported, never relabelled (that
    would approve transactions on a detector's word).

    Returns:
        (rows to keep, labels for all rows): train on ``x[keep], labels[keep]``.
    """
    import numpy as np

    labels = np.array(y, dtype=np.int64, copy=True)
    labels[audit.confirmed_hidden] = 1
    keep = np.ones(len(y), dtype=bool)
    keep[audit.quarantine] = False
    keep[audit.confirmed_hidden] = True
    return keep, labels


# --- signing and the training gate ------------------------------------------------------------------------------
def sign_audit(audit: PoisoningAudit, manifest: DatasetManifest, key: PrivateKey) -> bytes:
    """Sign the audit as a statement about the dataset (subject: the manifest's file and Merkle root).

    Raises:
        InvalidInputError: the audit is about another dataset.
    """
    from qsafe.fraud._signed import sign_statement, statement

    if audit.dataset and audit.dataset != manifest.digest:
        raise InvalidInputError(f"the audit is about {audit.dataset}, not {manifest.digest}")
    audit.dataset = manifest.digest
    return sign_statement(statement(manifest.name, manifest.subject_digests(), _labels.POISONING_AUDIT_PREDICATE_TYPE,
                                    audit.predicate()), key)


def verify_audit(data: bytes, keys: Sequence[PublicKey], manifest: DatasetManifest) -> dict[str, Any]:
    """Verify a signed audit about the dataset of ``manifest``; returns its predicate.

    Raises:
        FormatError: malformed, or about another dataset. SignatureError: no key verifies it.
    """
    from qsafe.fraud._signed import verify_statement

    st, _ = verify_statement(data, keys, _labels.POISONING_AUDIT_PREDICATE_TYPE, "poisoning audit")
    pred = st["predicate"]
    if st["subject"][0]["digest"] != manifest.subject_digests() or pred.get("dataset") != manifest.digest:
        raise FormatError(f"the poisoning audit is about another dataset, not {manifest.digest}")
    if pred.get("format") != AUDIT_FORMAT or pred.get("verdict") not in ("pass", "fail"):
        raise FormatError("poisoning audit: unknown format or verdict")
    return dict(pred)


def require_passing_audit(audit: bytes | None, keys: Sequence[PublicKey], manifest: DatasetManifest, *,
                          unsafe_train_on_failed_audit: bool = False) -> dict[str, Any]:
    """The training gate: the data must carry a signed, passing poisoning audit about exactly these rows.

    Args:
        audit: the signed audit (None: there is none).
        keys: the auditor's public keys.
        manifest: the verified manifest of the data about to be trained on.
        unsafe_train_on_failed_audit: train anyway on a failed audit (never on a missing or unsigned one); the
            caller must say so loudly and record it (the model card does).

    Returns:
        The audit predicate, with ``override`` set when the unsafe override let a failed audit through.

    Raises:
        DataAuditError: no audit, an audit that does not verify or is about other data, or (without the
            override) a failed one.
    """
    if audit is None:
        raise DataAuditError(f"no poisoning audit for dataset {manifest.digest}: training refused")
    try:
        pred = verify_audit(audit, keys, manifest)
    except (SignatureError, FormatError) as exc:
        raise DataAuditError(f"the poisoning audit does not hold for this data ({exc}): training refused") from exc
    if pred["verdict"] != "pass":
        if not unsafe_train_on_failed_audit:
            raise DataAuditError([f"dataset {manifest.digest} FAILED its poisoning audit; training refused:",
                                  *(f"  {r}" for r in pred.get("reasons", []))])
        pred["override"] = UNSAFE_OVERRIDE_FLAG
    return pred


def hidden_share_bound(n: int, alpha: float = 0.05) -> float:
    """A one-sided upper confidence bound on a proportion with zero events (rule of three generalised)."""
    return 1 - math.pow(alpha, 1 / max(n, 1))
