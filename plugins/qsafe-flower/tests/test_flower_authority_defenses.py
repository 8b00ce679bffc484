"""The key authority over mutual TLS, blind Multi-Krum, and qsafe's plaintext defenses as Flower strategies."""

from __future__ import annotations

import ssl
from pathlib import Path

import numpy as np
import pytest
from _deploy import make_certs
from _messages import GLOBAL, deltas, train_message
from flwr.app import Message, MetricRecord, RecordDict
from qsafe_flower import KeyAuthority, KeyAuthorityServer, RemoteKeyAuthority, defense_names, robust_strategy
from qsafe_flower._records import array_record_of

from qsafe import keys
from qsafe.errors import HEMismatchError, UnavailableError
from qsafe.federated import HEContext, aggregate, encrypt_update
from qsafe.federated.defenses import ClientUpdate, make_strategy


def test_remote_key_authority_needs_a_client_certificate(tmp_path: Path) -> None:
    make_certs(tmp_path)
    he = HEContext.generate()
    ks = [keys.generate() for _ in range(2)]
    allow = [k.public_key() for k in ks]
    server = KeyAuthorityServer(KeyAuthority(he, allow), "127.0.0.1", 0, certfile=str(tmp_path / "ka.pem"),
                                keyfile=str(tmp_path / "ka.key"), client_ca=str(tmp_path / "ca.pem")).start()
    try:
        remote = RemoteKeyAuthority(f"127.0.0.1:{server.port}", ca=str(tmp_path / "ca.pem"),
                                    certfile=str(tmp_path / "aggregator.pem"), keyfile=str(tmp_path / "aggregator.key"))
        ups = [encrypt_update(d, he.public(), k, 1) for k, d in zip(ks, deltas(2))]
        agg = aggregate(ups, he.public(), allow, 1).aggregate
        assert agg is not None
        mean = remote.decrypt_mean(agg.to_bytes(), [u.to_bytes() for u in ups], 1)
        assert np.abs(mean["w"] - (deltas(2)[0]["w"] + deltas(2)[1]["w"]) / 2).max() <= he.params.error_bound(1) + 1e-6
        with pytest.raises(HEMismatchError, match="key authority refused: .*already decrypted"):
            remote.decrypt_mean(agg.to_bytes(), [u.to_bytes() for u in ups], 1)
        # without a client certificate the TLS handshake fails: only the aggregator can ask
        anonymous = RemoteKeyAuthority.__new__(RemoteKeyAuthority)
        anonymous.host, anonymous.port, anonymous.timeout = "127.0.0.1", server.port, 10.0
        anonymous._ssl = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with pytest.raises(UnavailableError, match="cannot be reached"):
            anonymous.decrypt_mean(agg.to_bytes(), [u.to_bytes() for u in ups], 2)
    finally:
        server.shutdown()


def test_blind_multi_krum_drops_the_outlier_from_encrypted_distances() -> None:
    he = HEContext.generate("ckks", norm_keys=True)
    ks = [keys.generate() for _ in range(5)]
    allow = [k.public_key() for k in ks]
    rng = np.random.default_rng(3)
    base = rng.normal(0, 0.01, 500)
    updates = [{"w": (base + rng.normal(0, 0.001, 500)).astype(np.float32)} for _ in range(4)]
    updates.append({"w": (-base * 20).clip(-1, 1).astype(np.float32)})  # the poisoned one
    blobs = [encrypt_update(u, he.public(), k, 1).to_bytes() for k, u in zip(ks, updates)]
    chosen, scores = KeyAuthority(he, allow).krum(blobs, 1, f=1, m=3)
    assert 4 not in chosen and len(chosen) == 3
    assert scores[4] > max(scores[:4])
    norms = KeyAuthority(he, allow).norms(blobs[:2], 1)
    assert norms == pytest.approx([float(np.linalg.norm(u["w"])) for u in updates[:2]], rel=2e-2)


def _reply(node: int, client: int, delta: np.ndarray, examples: int) -> Message:
    local = {"w": GLOBAL["w"] + delta[:GLOBAL["w"].size].reshape(GLOBAL["w"].shape),
             "b": GLOBAL["b"] + delta[GLOBAL["w"].size:]}
    return Message(RecordDict({"arrays": array_record_of(local), "metrics": MetricRecord(
        {"num-examples": examples, "qsafe-client": client})}), reply_to=train_message(node, 1, None))


@pytest.mark.parametrize("name", ["multi-krum", "median", "trimmed-mean", "flame", "foolsgold", "norm-bound", "dp"])
def test_plaintext_defenses_as_flower_strategies_match_qsafe(name: str) -> None:
    assert set(defense_names()) >= {"norm-bound", "krum", "multi-krum", "median", "trimmed-mean", "foolsgold",
                                    "flame", "dp"}
    params = {"multi-krum": {"f": 1}}.get(name, {})
    rng = np.random.default_rng(5)
    size = GLOBAL["w"].size + GLOBAL["b"].size
    flat = [rng.normal(0, 0.01, size).astype(np.float32) for _ in range(7)]
    flat[2] = flat[2] * 50  # an outlier
    strategy = robust_strategy(name, seed=9, **params)
    strategy.current_arrays = array_record_of(GLOBAL)
    # delivered out of order: the strategy orders by the clients' qsafe-client metric
    replies = [_reply(100 + i, i, flat[i], 10 + i) for i in (3, 0, 6, 1, 5, 2, 4)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    def sent(i: int) -> np.ndarray:  # what the server sees: local - global, as the client's arrays carry it
        local = np.concatenate([(GLOBAL["w"] + flat[i][:GLOBAL["w"].size].reshape(GLOBAL["w"].shape)).reshape(-1),
                                GLOBAL["b"] + flat[i][GLOBAL["w"].size:]]).astype(np.float64)
        return (local - np.concatenate([GLOBAL["w"].reshape(-1), GLOBAL["b"]]).astype(np.float64)).astype(np.float32)

    expected = make_strategy(name, **params).aggregate(1, [ClientUpdate(i, sent(i), 10 + i) for i in range(7)],
                                                       np.random.default_rng(9))
    got = np.concatenate([arrays["w"].numpy().reshape(-1), arrays["b"].numpy()])
    want = np.concatenate([GLOBAL["w"].reshape(-1), GLOBAL["b"]]) + expected.delta
    assert np.array_equal(got, want.astype(np.float32))
