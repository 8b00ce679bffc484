"""The credit-card fraud data: strict CSV reading, fixed features, stratified splits, re-weighting to a base rate.

The rows are kept as the exact bytes of their CSV lines (what the dataset manifest hashes), next to the parsed
values, so what is trained on is what was hashed: the file is read once.

Features are a fixed, data-independent transform (no statistic of the data is used, so the transform costs no
privacy budget): ``Time`` is dropped (seconds since the first transaction of a two-day capture, not a property
of a transaction), ``V1``..``V28`` (already PCA components) are soft-clipped to ``5 tanh(V / 5)`` (identity
near 0, bounded by 5: the extreme values of some frauds, up to |V| ~ 70, no longer dominate the clipped DP-SGD
gradients), ``Amount`` becomes ``log1p(Amount) / 4``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qsafe import _limits
from qsafe.errors import FormatError, InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "COLUMNS",
    "FEATURE_NAMES",
    "FEATURE_TRANSFORM",
    "REAL_FRAUD_RATE",
    "FraudData",
    "Split",
    "parse_csv",
    "prevalence_weights",
    "read_csv",
    "stratified_split",
]

COLUMNS = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")
FEATURE_NAMES = (*(f"V{i}" for i in range(1, 29)), "log1p(Amount)/4")
FEATURE_TRANSFORM = ("drop Time; V1..V28 -> 5*tanh(V/5); Amount -> log1p(Amount)/4 (fixed, data-independent: no "
                     "privacy cost)")
#: The fraud rate of the full ULB data (492 of 284,807): metrics are also reported re-weighted to it.
REAL_FRAUD_RATE = 492 / 284_807
#: Bound on the CSV read whole (the sample is 2.9 MB; the full ULB file is 144 MB).
MAX_CSV_BYTES = _limits.DATASET_CSV_MAX_BYTES


@dataclass(frozen=True)
class FraudData:
    """A parsed fraud dataset.

    Attributes:
        header: the header line's bytes (no line ending).
        rows: each data line's bytes (no line ending), in file order: what the Merkle tree hashes.
        values: float64 array (rows, 30): Time, V1..V28, Amount.
        labels: int64 array (rows,): 1 fraud, 0 legitimate.
        source: where it was read from.
    """

    header: bytes
    rows: tuple[bytes, ...]
    values: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int64]
    source: str = "<bytes>"

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def amount(self) -> npt.NDArray[np.float64]:
        return self.values[:, 29]

    @property
    def fraud_rate(self) -> float:
        return float(self.labels.mean()) if self.n else 0.0

    def features(self, *, soft_clip: bool = True) -> npt.NDArray[np.float32]:
        """The model's input: 5 tanh(V/5) for V1..V28 and log1p(Amount)/4, float32 (:data:`FEATURE_TRANSFORM`).

        ``soft_clip=False`` keeps V1..V28 as published: the poisoning audit's detectors look at the data as it is
        (the soft clip is a DP-SGD aid and would hide the outliers an Isolation Forest relies on).
        """
        import numpy as np

        out = np.empty((self.n, 29), dtype=np.float32)
        v = self.values[:, 1:29]
        out[:, :28] = 5.0 * np.tanh(v / 5.0) if soft_clip else v
        out[:, 28] = np.log1p(self.values[:, 29]) / 4.0
        return out

    def to_csv(self) -> bytes:
        """The dataset as CSV bytes (header and rows joined with ``\\n``, final newline)."""
        return b"\n".join((self.header, *self.rows)) + b"\n"

    def with_labels(self, labels: npt.NDArray[np.int64]) -> FraudData:
        """A copy whose ``Class`` field (the last column) of every row is ``labels`` (other bytes unchanged).

        Raises:
            InvalidInputError: wrong length, or a label other than 0/1.
        """
        import numpy as np

        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != self.labels.shape or not np.isin(labels, (0, 1)).all():
            raise InvalidInputError(f"labels must be {self.n} values of 0 or 1")
        rows = tuple(row if int(old) == int(new) else row[: row.rindex(b",") + 1] + b"%d" % int(new)
                     for row, old, new in zip(self.rows, self.labels, labels))
        return FraudData(self.header, rows, self.values, labels, self.source)

    def subset(self, index: npt.NDArray[np.int64]) -> FraudData:
        """The rows at ``index`` (in that order)."""
        return FraudData(self.header, tuple(self.rows[int(i)] for i in index), self.values[index],
                         self.labels[index], self.source)


def _field(text: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"line {line}: {column} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise FormatError(f"line {line}: {column} is not finite: {text[:40]!r}")
    return value


def parse_csv(data: bytes, source: str = "<bytes>") -> FraudData:
    """Parse the ULB credit-card CSV: header ``Time,V1..V28,Amount,Class``, 31 numeric fields per row.

    Raises:
        FormatError: not UTF-8/ASCII, wrong header, a row with the wrong number of fields, a non-finite value, a
            negative amount, a class other than 0/1, or no rows. Each message names the line.
    """
    import numpy as np

    if len(data) > MAX_CSV_BYTES:
        raise FormatError(f"{source}: larger than {MAX_CSV_BYTES >> 20} MiB")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if not lines:
        raise FormatError(f"{source}: empty file")
    header, rows = lines[0], lines[1:]
    expected = ",".join(f'"{c}"' if header.startswith(b'"') else c for c in COLUMNS).encode()
    if header != expected:
        raise FormatError(f"{source}: header is not the ULB credit-card header ({','.join(COLUMNS[:3])},...,Class)")
    if not rows:
        raise FormatError(f"{source}: no data rows")
    values = np.empty((len(rows), 30), dtype=np.float64)
    labels = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        line = i + 2
        try:
            fields = row.decode("ascii").split(",")
        except UnicodeDecodeError:
            raise FormatError(f"{source}: line {line} is not ASCII text") from None
        if len(fields) != 31:
            raise FormatError(f"{source}: line {line} has {len(fields)} fields, not 31")
        values[i] = [_field(f, line, c) for f, c in zip(fields[:30], COLUMNS)]
        if fields[30].strip('"') not in ("0", "1"):
            raise FormatError(f"{source}: line {line}: Class must be 0 or 1, not {fields[30][:20]!r}")
        labels[i] = int(fields[30].strip('"'))
        if values[i, 29] < 0:
            raise FormatError(f"{source}: line {line}: Amount is negative")
    return FraudData(header, tuple(rows), values, labels, source)


def read_csv(path: str | os.PathLike[str]) -> FraudData:
    """Read and parse a fraud CSV file (a regular file, at most 256 MiB).

    Raises:
        FormatError: unreadable, not a regular file, too large, or malformed (see :func:`parse_csv`).
    """
    from qsafe._files import read_regular

    data = read_regular(path, "dataset", max_bytes=MAX_CSV_BYTES)
    return parse_csv(data, os.fsdecode(path))


@dataclass(frozen=True)
class Split:
    """Row indices of a stratified split: train (the private training data), test, holdout (validation and the
    attacker's / traffic pool)."""

    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    holdout: npt.NDArray[np.int64]

    def summary(self, labels: npt.NDArray[np.int64]) -> dict[str, dict[str, int]]:
        return {name: {"rows": len(idx), "frauds": int(labels[idx].sum())}
                for name, idx in (("train", self.train), ("test", self.test), ("holdout", self.holdout))}


def stratified_split(labels: npt.NDArray[np.int64], fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                     seed: int = 0) -> Split:
    """Split rows into train/test/holdout with the same fraud rate in each part.

    Raises:
        InvalidInputError: fractions that are not three positive numbers summing to 1.
    """
    import numpy as np

    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise InvalidInputError(f"split fractions must be three positive numbers summing to 1, not {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        a = round(fractions[0] * len(idx))
        b = a + round(fractions[1] * len(idx))
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            part.extend(int(i) for i in chunk)
    train, test, holdout = (np.sort(np.asarray(p, dtype=np.int64)) for p in parts)
    return Split(train, test, holdout)


def prevalence_weights(labels: npt.NDArray[np.int64], target_rate: float = REAL_FRAUD_RATE) -> npt.NDArray[np.float64]:
    """Sample weights that make ``labels`` look as if frauds had ``target_rate`` prevalence.

    Frauds keep weight 1; each legitimate row counts ``(p / (1 - p)) * ((1 - t) / t)`` times, where ``p`` is the
    sample's fraud rate and ``t`` the target. Recall is unchanged; precision, F1 and PR-AUC are what they would
    be at the target rate (for the same score distributions per class).

    Raises:
        InvalidInputError: a target outside (0, 1), or labels without both classes.
    """
    import numpy as np

    if not 0 < target_rate < 1:
        raise InvalidInputError(f"target fraud rate must be in (0, 1), not {target_rate}")
    p = float(np.mean(labels))
    if p in (0.0, 1.0):
        raise InvalidInputError("re-weighting needs both classes")
    legit = (p / (1 - p)) * ((1 - target_rate) / target_rate)
    return np.where(labels == 1, 1.0, legit)
