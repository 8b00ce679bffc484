"""Strict CSV parsing, fixed features, stratified splits, re-weighting to the real fraud rate."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import FormatError, InvalidInputError
from qsafe.fraud.data import (
    REAL_FRAUD_RATE,
    parse_csv,
    prevalence_weights,
    stratified_split,
)
from tests.fraud.conftest import CSV

HEADER = ",".join(["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"])


def _row(label: str = "0", amount: str = "10.0", v1: str = "0.5") -> str:
    return ",".join(["1.0", v1, *["0.1"] * 27, amount, label])


def test_the_shipped_sample_is_what_its_provenance_says(fraud_data) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    assert hashlib.sha256(CSV.read_bytes()).hexdigest() == \
        "03f9faa6d17e910ee343bdf4c211c6135bd622d8ae4aa6eacb246309ddcc0e95"
    assert fraud_data.n == 5412 and int(fraud_data.labels.sum()) == 492
    assert abs(fraud_data.amount[fraud_data.labels == 1].mean() - 122.211321) < 1e-5
    assert fraud_data.features().shape == (5412, 29) and fraud_data.features().dtype == np.float32


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty"),
    ("a,b,c\n" + _row(), "header"),
    (HEADER + "\n", "no data rows"),
    (HEADER + "\n" + _row() + ",7", "line 2 has 32 fields"),
    (HEADER + "\n" + _row() + "\n" + _row(v1="nan"), "line 3: V1 is not finite"),
    (HEADER + "\n" + _row(v1="1e999"), "not finite"),
    (HEADER + "\n" + _row(v1="abc"), "line 2: V1 is not a number"),
    (HEADER + "\n" + _row(label="2"), "Class must be 0 or 1"),
    (HEADER + "\n" + _row(amount="-3"), "Amount is negative"),
    (HEADER + "\n" + _row().replace("0.5", "0.\xe9"), "not ASCII"),
])
def test_malformed_csv_is_a_format_error_naming_the_line(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_csv(text.encode("latin-1"), "t.csv")


def test_with_labels_rewrites_only_the_class_field() -> None:
    data = parse_csv((HEADER + "\n" + _row("0") + "\n" + _row("1") + "\n").encode())
    flipped = data.with_labels(np.array([1, 1]))
    assert flipped.rows[0] == data.rows[0][:-1] + b"1" and flipped.rows[1] == data.rows[1]
    assert parse_csv(flipped.to_csv()).labels.tolist() == [1, 1]
    with pytest.raises(InvalidInputError):
        data.with_labels(np.array([0, 2]))


def test_split_is_stratified_disjoint_and_complete(fraud_data) -> None:  # type: ignore[no-untyped-def]
    y = fraud_data.labels
    sp = stratified_split(y, (0.6, 0.2, 0.2), seed=3)
    parts = [sp.train, sp.test, sp.holdout]
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    for p in parts:
        assert abs(y[p].mean() - y.mean()) < 0.002
    assert not np.array_equal(stratified_split(y, seed=4).train, sp.train)
    with pytest.raises(InvalidInputError):
        stratified_split(y, (0.5, 0.5, 0.5))


def test_prevalence_weights_give_the_target_rate(fraud_data) -> None:  # type: ignore[no-untyped-def]
    y = fraud_data.labels
    w = prevalence_weights(y, REAL_FRAUD_RATE)
    assert abs(w[y == 1].sum() / w.sum() - REAL_FRAUD_RATE) < 1e-12
    assert (w[y == 1] == 1).all()
    with pytest.raises(InvalidInputError):
        prevalence_weights(np.zeros(5, dtype=np.int64))
