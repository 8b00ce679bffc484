"""The digits scenario's data: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, no download).

Pixels are divided by 16 into [0, 1]. The split is scikit-learn's stratified ``train_test_split``
(``test_size=360, stratify=y, random_state=0``): 1,437 training and 360 test images (about 20 %, 35-37 per class),
the same for every command and test (``split_digits``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["DIGITS_SPLIT_SEED", "Dataset", "digits", "split_digits"]

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (n, 1, 8, 8) float32 in [0, 1] and labels ``y`` (n,) int64, with a name and a digest."""

    name: str
    x: np.ndarray
    y: np.ndarray

    @property
    def digest(self) -> str:
        """``sha256:`` over shapes, pixels and labels (recorded in signed evaluations)."""
        h = hashlib.sha256()
        h.update(repr((self.x.shape, str(self.x.dtype), self.y.shape, str(self.y.dtype))).encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return "sha256:" + h.hexdigest()

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all when None), keeping the name with the count."""
        if n is None or n >= len(self.y):
            return self
        return Dataset(f"{self.name}[:{n}]", self.x[:n], self.y[:n])


def digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: ``x`` (1797, 1, 8, 8) float32 in [0, 1], ``y`` int64."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return x, bunch.target.astype(np.int64)


def split_digits() -> tuple[Dataset, Dataset]:
    """The documented stratified split: (train 1,437, test 360), ``random_state=0``."""
    from sklearn.model_selection import train_test_split

    x, y = digits()
    tr, te = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=y,
                              random_state=DIGITS_SPLIT_SEED)
    tr, te = np.sort(tr), np.sort(te)
    return Dataset("sklearn-digits/train", x[tr], y[tr]), Dataset("sklearn-digits/test", x[te], y[te])
