"""Theft defenses: the keyed watermark, the per-key monitor, the API modes and the extraction attack."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import InvalidInputError
from qsafe.fraud.extraction import f1, fit_surrogate, query_stream
from qsafe.fraud.theft import QueryMonitor, ResponseWatermark, ScoringAPI, check_watermark


def _victim(x: np.ndarray) -> np.ndarray:
    z = 3.0 * x[:, 0] - 2.0 * x[:, 1] - 4.0
    return 1 / (1 + np.exp(-z))


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4000, 29)).astype(np.float32)


def test_watermark_selection_is_keyed_and_at_its_rate(rows) -> None:  # type: ignore[no-untyped-def]
    wm = ResponseWatermark(b"s" * 32, rate=0.05)
    a, b = wm.selected("key-a", rows), wm.selected("key-b", rows)
    assert 0.035 < a.mean() < 0.065 and np.array_equal(a, wm.selected("key-a", rows))
    assert (a != b).sum() > 100  # another API key, another trigger set
    assert not np.array_equal(a, ResponseWatermark(b"t" * 32, rate=0.05).selected("key-a", rows))
    with pytest.raises(InvalidInputError):
        ResponseWatermark(b"short")


def test_the_api_never_turns_a_decline_into_an_approval(rows) -> None:  # type: ignore[no-untyped-def]
    wm = ResponseWatermark(b"s" * 32, rate=0.3)
    for mode in ("score", "decision", "label"):
        api = ScoringAPI(_victim, mode=mode, watermark=wm)
        answers = api.query(f"k-{mode}", rows)
        declined = _victim(rows) >= 0.5
        assert api.fraud_of(answers)[declined].all()
        flipped = api.fraud_of(answers) & ~declined
        assert flipped.sum() == len(wm.triggers[f"k-{mode}"]) > 0
    assert set(np.unique(ScoringAPI(_victim, mode="decision").query("d", rows))) <= {0.0, 1.0, 2.0}
    with pytest.raises(InvalidInputError):
        ScoringAPI(_victim, mode="probabilities")


def test_watermark_identifies_a_copy_and_not_independent_models(rows) -> None:  # type: ignore[no-untyped-def]
    wm = ResponseWatermark(b"s" * 32, rate=0.05)
    api = ScoringAPI(_victim, mode="label", watermark=wm)
    answers = api.query("thief", rows[:1000])
    copy = fit_surrogate(rows[:1000], answers, "label")
    selected, victim = wm.selected("thief", rows[:1000]), _victim(rows[:1000]) >= 0.5
    assert check_watermark(copy.score(rows[:1000]), selected, victim).identified
    rng = np.random.default_rng(1)
    false = sum(check_watermark(rng.random(1000), selected, victim, alpha=0.05).identified for _ in range(200))
    assert false <= 20  # the test's false-positive rate is its alpha (0.05 x 200 = 10 expected)
    honest = fit_surrogate(rows[:1000], (_victim(rows[:1000]) >= 0.5).astype(float), "label")
    assert not check_watermark(honest.score(rows[:1000]), selected, victim).identified


def test_monitor_flags_a_fraud_heavy_stream_not_a_merchant(rows) -> None:  # type: ignore[no-untyped-def]
    ref = rows[:2000]
    monitor = QueryMonitor(ref, fraud_rate=0.004, alpha=1e-5)
    legit = rows[2000:3000][_victim(rows[2000:3000]) < 0.5]
    assert not monitor.observe("merchant", legit, _victim(legit))
    heavy = rows[3000:][np.argsort(-_victim(rows[3000:]))][:60]
    mixed = np.concatenate([heavy[:10], legit[:90]])
    assert monitor.observe("ring", mixed, _victim(mixed))
    assert monitor.flagged["ring"]["test"] == "fraud-rate" and monitor.flagged["ring"]["query"] <= 10
    far = rows[:100] * 6
    assert monitor.observe("synthetic", far, np.zeros(100))
    assert monitor.flagged["synthetic"]["test"] == "off-manifold"


def test_extraction_copies_a_model(rows) -> None:  # type: ignore[no-untyped-def]
    y = (_victim(rows) >= 0.5).astype(np.int64)
    for kind in ("real", "real-natural", "synthetic"):
        q = query_stream(kind, rows, y, 300, seed=0)
        assert q.shape == (300, 29) and q.dtype == np.float32
    q = query_stream("real", rows, y, 800, seed=0)
    copy = fit_surrogate(q, np.round(_victim(q), 3), "score")
    assert f1(copy(rows[3000:]), y[3000:]) > 0.8
    with pytest.raises(InvalidInputError):
        query_stream("adaptive", rows, y, 10)


def test_a_repeated_query_is_one_trial_of_the_watermark_test(rows) -> None:  # type: ignore[no-untyped-def]
    wm = ResponseWatermark(b"s" * 32, rate=0.05)
    distinct = rows[:300]
    stream = np.concatenate([distinct, distinct[:100], distinct[:100]])  # 100 rows sent three times
    selected, victim = wm.selected("k", stream), _victim(stream) >= 0.5
    # a model whose scores are a fixed function of the row: the triggers among the repeated rows decide the test
    score = np.random.default_rng(3).random(len(distinct))[np.r_[np.arange(300), np.arange(100), np.arange(100)]]
    once = check_watermark(score, selected, victim, queries=stream)
    assert once.triggers + once.controls == int((~(_victim(distinct) >= 0.5)).sum())  # each distinct row once
    counted = check_watermark(score, selected, victim)
    assert counted.triggers + counted.controls > once.triggers + once.controls
    with pytest.raises(InvalidInputError):
        check_watermark(score, selected, victim, queries=stream[:10])
