"""Poisoning audit: a poisoned set is caught (and where), the clean one passes, and training refuses failed data."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import DataAuditError
from qsafe.fraud.data import FEATURE_NAMES, parse_csv, stratified_split
from qsafe.fraud.dataset import build_manifest
from qsafe.fraud.poisoning import (
    UNSAFE_OVERRIDE_FLAG,
    audit_labels,
    flip_random,
    flip_targeted,
    remediate,
    require_passing_audit,
    sign_audit,
)
from tests.fraud.conftest import CSV


@pytest.fixture(scope="module")
def train(fraud_data):  # type: ignore[no-untyped-def]
    sp = stratified_split(fraud_data.labels, seed=0)
    return fraud_data.features(soft_clip=False)[sp.train], fraud_data.labels[sp.train], fraud_data.amount[sp.train]


@pytest.fixture(scope="module")
def targeted(train):  # type: ignore[no-untyped-def]
    x, y, amount = train
    flips = flip_targeted(y, amount, 0.10)
    return flips, audit_labels(x, np.where(flips, 0, y), FEATURE_NAMES)


def test_attacks_flip_what_they_say(train) -> None:  # type: ignore[no-untyped-def]
    _, y, amount = train
    t = flip_targeted(y, amount, 0.10)
    assert t.sum() == round(0.1 * y.sum()) and (y[t] == 1).all()
    assert amount[t].min() >= amount[(y == 1) & ~t].max()  # the highest amounts, nothing else
    r = flip_random(y, 0.2, seed=1)
    assert r.sum() == round(0.2 * y.sum()) and (y[r] == 1).all()
    assert not np.array_equal(r, flip_random(y, 0.2, seed=2))


def test_the_clean_training_rows_pass(train) -> None:  # type: ignore[no-untyped-def]
    x, y, _ = train
    audit = audit_labels(x, y, FEATURE_NAMES)
    assert audit.passed and audit.reasons == [] and audit.slices == []


def test_a_targeted_flip_is_caught_and_located(targeted, train) -> None:  # type: ignore[no-untyped-def]
    flips, audit = targeted
    _x, y, _ = train
    assert audit.verdict == "fail"
    assert audit.slices and audit.slices[0].feature == "log1p(Amount)/4"
    assert any("log1p(Amount)/4" in r for r in audit.reasons)
    confirmed = np.zeros(len(y), bool)
    confirmed[audit.confirmed_hidden] = True
    assert (confirmed & flips).sum() >= 0.5 * flips.sum()   # most confirmed suspects are real flips...
    assert (confirmed & flips).sum() > 2 * (confirmed & ~flips).sum()  # ...and few are not
    keep, labels = remediate(np.where(flips, 0, y), audit)
    assert (~keep).sum() == len(set(audit.quarantine) - set(audit.confirmed_hidden)) > 0  # confirmed rows are relabelled
    assert (labels[audit.confirmed_hidden] == 1).all() and keep[audit.confirmed_hidden].all()
    assert (flips & (~keep | (labels == 1))).sum() >= 0.85 * flips.sum()  # the poison is dropped or relabelled


def test_random_flips_are_caught_by_confident_learning(train) -> None:  # type: ignore[no-untyped-def]
    x, y, _ = train
    flips = flip_random(y, 0.2, seed=0)
    audit = audit_labels(x, np.where(flips, 0, y), FEATURE_NAMES)
    assert audit.verdict == "fail"
    assert any(r.startswith("confident learning finds") for r in audit.reasons)


@pytest.fixture(scope="module")
def manifest():  # type: ignore[no-untyped-def]
    raw = CSV.read_bytes()
    return build_manifest(parse_csv(raw), raw, name="creditcard_sample.csv")


def test_training_gate(targeted, manifest, signer, other_signer, train) -> None:  # type: ignore[no-untyped-def]
    _, audit = targeted
    x, y, _ = train
    keys = [signer.public_key()]
    failed = sign_audit(audit, manifest, signer)
    with pytest.raises(DataAuditError, match="FAILED its poisoning audit") as err:
        require_passing_audit(failed, keys, manifest)
    assert err.value.exit_code == 11 and UNSAFE_OVERRIDE_FLAG in err.value.hint
    assert require_passing_audit(failed, keys, manifest, unsafe_train_on_failed_audit=True)["override"]
    with pytest.raises(DataAuditError, match="no poisoning audit"):
        require_passing_audit(None, keys, manifest, unsafe_train_on_failed_audit=True)
    with pytest.raises(DataAuditError, match="does not hold"):  # signed by someone else: even the override refuses
        require_passing_audit(sign_audit(audit, manifest, other_signer), keys, manifest,
                              unsafe_train_on_failed_audit=True)
    clean = audit_labels(x, y, FEATURE_NAMES)
    passing = sign_audit(clean, manifest, signer)
    assert require_passing_audit(passing, keys, manifest)["verdict"] == "pass"
    other = build_manifest(parse_csv(CSV.read_bytes()[:-200].rsplit(b"\n", 1)[0] + b"\n"), b"x", name="other.csv")
    with pytest.raises(DataAuditError, match="another dataset"):
        require_passing_audit(passing, keys, other)
