"""The corpus ships in the package, de-duplicates to 5,171 texts, and splits deterministically."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from qsafe.errors import InvalidInputError, UsageError
from qsafe.federated_sim import scenario as sc
from qsafe.federated_sim.attacks import AttackSpec, craft_update, poison_dataset


def test_shipped_corpus_is_the_recorded_file() -> None:
    digest = hashlib.sha256(sc.DATA_FILE.read_bytes()).hexdigest()
    assert digest == "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
    assert (sc.DATA_FILE.parent / "PROVENANCE.md").is_file()


def test_deduplicated_counts() -> None:
    corpus = sc.load_corpus()
    assert corpus.rows == 5574
    assert len(corpus.texts) == len(set(corpus.texts)) == 5171
    assert int((corpus.labels == sc.SPAM).sum()) + int((corpus.labels == sc.HAM).sum()) == 5171


def test_split_is_stratified_disjoint_and_seeded() -> None:
    labels = sc.load_corpus().labels
    train, test = sc.train_test_split(labels, 0.2, np.random.default_rng(3))
    again, _ = sc.train_test_split(labels, 0.2, np.random.default_rng(3))
    other, _ = sc.train_test_split(labels, 0.2, np.random.default_rng(4))
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert abs(labels[test].mean() - labels.mean()) < 0.005


def test_partitions() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    iid = sc.partition_iid(1000, 20, np.random.default_rng(0))
    assert sorted(np.concatenate([p.indices for p in iid]).tolist()) == list(range(1000))
    assert {len(p.indices) for p in iid} == {50}
    skew = sc.partition_dirichlet(labels, 20, 0.1, np.random.default_rng(0))
    assert sorted(np.concatenate([p.indices for p in skew]).tolist()) == list(range(1000))
    spam_share = [labels[p.indices].mean() for p in skew]
    assert max(spam_share) - min(spam_share) > 0.5  # alpha 0.1 is strongly non-IID
    with pytest.raises(InvalidInputError):
        sc.partition_dirichlet(labels, 20, 0.0, np.random.default_rng(0))


def test_encoding_and_trigger() -> None:
    ids = sc.encode(["Call me now", ""], buckets=100, length=6)
    assert ids.shape == (2, 6) and (ids[0, :3] > 0).all() and (ids[0, 3:] == 0).all() and (ids[1] == 0).all()
    again = sc.encode(["call ME now!"], buckets=100, length=6)
    assert np.array_equal(ids[:1], again)  # case and punctuation do not matter; crc32 is stable
    triggered = sc.add_trigger(ids, "grandma yesterday", buckets=100)
    assert np.array_equal(triggered[0, 2:5], ids[0, :3]) and (triggered[:, :2] > 0).all()
    with pytest.raises(InvalidInputError):
        sc.add_trigger(ids, "!!!", buckets=100)


def test_attack_crafting() -> None:
    x, y = np.ones((3, 4), dtype=np.int64), np.array([0, 1, 1])
    px, py = poison_dataset(x, y, x[y == 1], "grandma", buckets=10, copies=2)
    assert len(px) == 7 and py[3:].tolist() == [0, 0, 0, 0]
    update = np.array([3.0, 4.0], dtype=np.float32)
    assert craft_update(AttackSpec("poison"), update, boost=10, bound=None, honest_norm=1).tolist() == [3, 4]
    assert craft_update(AttackSpec("replace"), update, boost=10, bound=None, honest_norm=1).tolist() == [30, 40]
    scaled = craft_update(AttackSpec("norm"), update, boost=10, bound=2.0, honest_norm=1)
    assert float(np.linalg.norm(scaled)) == pytest.approx(0.99 * 2.0, rel=1e-6)
    guessed = craft_update(AttackSpec("norm"), update, boost=10, bound=None, honest_norm=0.5)
    assert float(np.linalg.norm(guessed)) == pytest.approx(0.99 * 0.5, rel=1e-6)
    assert AttackSpec().boost_for(20, 2) == 10
    with pytest.raises(UsageError):
        AttackSpec("bribe")
