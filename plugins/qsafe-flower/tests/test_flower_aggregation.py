"""The client mod and the encrypted-aggregation wrapper, driven with hand-made Flower messages (no SuperLink)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _messages import GLOBAL, client_reply, deltas, train_message
from flwr.app import Error, Message, RecordDict
from flwr.serverapp.strategy import FedAvg
from qsafe_flower import AuditTrail, KeyAuthority, QsafeEncryptedAggregation, make_qsafe_mod
from qsafe_flower._records import array_record_of, update_record

from qsafe import keys
from qsafe.errors import AuditLogError, HEMismatchError, UsageError
from qsafe.federated import HEContext
from qsafe.federated.audit import verify_audit_log

QSAFE = str(Path(sys.executable).parent / "qsafe")


@pytest.fixture(scope="module")
def he() -> HEContext:
    return HEContext.generate()


@pytest.fixture(scope="module")
def clients() -> list[keys.PrivateKey]:
    return [keys.generate() for _ in range(4)]


def _wrapper(he: HEContext, clients: list[keys.PrivateKey], audit: AuditTrail | None = None,
             **kwargs: object) -> tuple[QsafeEncryptedAggregation, KeyAuthority]:
    allow = [k.public_key() for k in clients]
    authority = KeyAuthority(he, allow)
    wrapper = QsafeEncryptedAggregation(FedAvg(), context=he.public(), allowlist=allow, key_authority=authority,
                                        audit=audit, **kwargs)  # type: ignore[arg-type]
    wrapper.current_arrays = array_record_of(GLOBAL)
    return wrapper, authority


def test_encrypted_round_gives_the_mean_update(he: HEContext, clients: list[keys.PrivateKey]) -> None:
    wrapper, _ = _wrapper(he, clients)
    ds = deltas(3)
    replies = [client_reply(make_qsafe_mod(he.public(), k), train_message(10 + i, 1, he.public().fingerprint), d)
               for i, (k, d) in enumerate(zip(clients, ds))]
    for reply in replies:  # the mod replaced the plaintext by one opaque, signed update
        (record,) = reply.content.array_records.values()
        assert list(record) == ["qsafe-update"] and record["qsafe-update"].stype == "qsafe/fl-update-v1"
        assert b"qsafe-fl-update/v1" in record["qsafe-update"].data[:32]
    arrays, _ = wrapper.aggregate_train(1, replies)
    assert arrays is not None
    got = {k: v.numpy() for k, v in arrays.items()}
    bound = he.params.error_bound(1) + 1e-6  # quantization of the mean, plus float32 rounding of the sum
    for name, value in GLOBAL.items():
        expected = value.astype(np.float64) + np.mean([d[name] for d in ds], axis=0)
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        assert np.abs(got[name] - expected).max() <= bound


def _tampered(reply: Message) -> Message:
    (name, record), = reply.content.array_records.items()
    data = bytearray(record["qsafe-update"].data)
    data[-5000] ^= 1  # inside a ciphertext: its signed digest no longer matches
    reply.content[name] = update_record(bytes(data))
    return reply


def test_bad_updates_are_refused_one_by_one_and_audited(he: HEContext, clients: list[keys.PrivateKey],
                                                        tmp_path: Path) -> None:
    signer = keys.generate()
    (tmp_path / "agg.pub").write_bytes(signer.public_key().to_pem())
    audit = AuditTrail(tmp_path / "audit.jsonl", signer, {"test": "refusals"})
    wrapper, _ = _wrapper(he, clients[:3], audit=audit)
    fp = he.public().fingerprint
    ds = deltas(6)
    mods = [make_qsafe_mod(he.public(), k) for k in clients]
    good = [client_reply(mods[i], train_message(10 + i, 1, fp), ds[i]) for i in range(2)]
    replay = client_reply(mods[0], train_message(12, 1, fp), ds[2])  # same client key again this round
    stale = client_reply(mods[2], train_message(13, 2, fp), ds[3])  # an update made for another round
    stranger = client_reply(mods[3], train_message(14, 1, fp), ds[4])  # not on the allowlist
    tampered = _tampered(client_reply(mods[2], train_message(15, 1, fp), ds[5]))
    garbage = Message(RecordDict({"arrays": update_record(b"not an update")}), reply_to=train_message(16, 1, fp))
    failed = Message(Error(code=0, reason="client crashed"), reply_to=train_message(17, 1, fp))
    arrays, _ = wrapper.aggregate_train(1, [good[0], replay, stale, good[1], stranger, tampered, garbage, failed])
    audit.close()
    assert arrays is not None
    got = {k: v.numpy() for k, v in arrays.items()}
    expected = GLOBAL["w"] + (ds[0]["w"] + ds[1]["w"]) / 2  # only the two good ones
    assert np.abs(got["w"] - expected).max() <= he.params.error_bound(1) + 1e-6
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    verdicts = {r["client"]: (r["decision"], r["note"]) for r in records if r["type"] == "client"}
    assert {n for n, (d, _) in verdicts.items() if d == "accepted"} == {10, 11}
    assert verdicts[12][0] == "refused" and "replay" in verdicts[12][1]
    assert verdicts[13][0] == "refused" and "wrong round" in verdicts[13][1]
    assert verdicts[14][0] == "refused" and "unknown client" in verdicts[14][1]
    assert verdicts[15][0] == "refused" and "does not match its signed digest" in verdicts[15][1]
    assert verdicts[16][0] == "refused" and "malformed" in verdicts[16][1]
    assert verdicts[17] == ("no-reply", "error reply: client crashed")
    assert verify_audit_log(tmp_path / "audit.jsonl", signer.public_key()).rounds == 1
    ok = subprocess.run([QSAFE, "fl", "audit", "verify", str(tmp_path / "audit.jsonl"), "--key",
                         str(tmp_path / "agg.pub")], check=False, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == ""
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"accepted"', '"rejected"', 1) if '"accepted"' in lines[2] else lines[2].replace(
        '"refused"', '"accepted"', 1)
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditLogError):
        verify_audit_log(tmp_path / "audit.jsonl", signer.public_key())
    bad = subprocess.run([QSAFE, "fl", "audit", "verify", str(tmp_path / "audit.jsonl"), "--key",
                          str(tmp_path / "agg.pub")], check=False, capture_output=True, text=True)
    assert bad.returncode == 17 and "record 3 (round 1" in bad.stderr  # line 3 was changed


def test_too_few_accepted_updates_leave_the_model_unchanged(he: HEContext, clients: list[keys.PrivateKey]) -> None:
    wrapper, authority = _wrapper(he, clients)
    reply = client_reply(make_qsafe_mod(he.public(), clients[0]), train_message(10, 3, he.public().fingerprint),
                         deltas(1)[0])
    assert wrapper.aggregate_train(3, [reply]) == (None, None)
    assert authority.decrypted_rounds == set()


def test_key_authority_decrypts_once_per_round_and_only_real_sums(he: HEContext,
                                                                  clients: list[keys.PrivateKey]) -> None:
    from qsafe.federated import aggregate, encrypt_update

    allow = [k.public_key() for k in clients]
    authority = KeyAuthority(he, allow)
    ups = [encrypt_update(d, he.public(), k, 4) for k, d in zip(clients, deltas(3))]
    agg = aggregate(ups, he.public(), allow, 4).aggregate
    assert agg is not None
    one = aggregate(ups[:1], he.public(), allow, 4).aggregate
    assert one is not None
    with pytest.raises(HEMismatchError, match="fewer than the minimum"):
        authority.decrypt_mean(one.to_bytes(), [ups[0].to_bytes()], 4)
    forged = aggregate([ups[0], ups[1]], he.public(), allow, 4).aggregate  # claims 3 contributors below
    with pytest.raises(HEMismatchError):
        authority.decrypt_mean(agg.to_bytes(), [u.to_bytes() for u in ups[:2]], 4)  # an update it names is missing
    assert forged is not None
    mean = authority.decrypt_mean(agg.to_bytes(), [u.to_bytes() for u in ups], 4, run="r1")
    assert set(mean) == set(GLOBAL)
    with pytest.raises(HEMismatchError, match="already decrypted"):
        authority.decrypt_mean(forged.to_bytes(), [u.to_bytes() for u in ups[:2]], 4, run="r1")
    authority.decrypt_mean(forged.to_bytes(), [u.to_bytes() for u in ups[:2]], 4, run="r2")  # another run


def test_the_aggregator_never_holds_the_secret_and_clients_pin_the_context(he: HEContext,
                                                                           clients: list[keys.PrivateKey]) -> None:
    allow = [k.public_key() for k in clients]
    with pytest.raises(UsageError, match="secret"):
        QsafeEncryptedAggregation(FedAvg(), context=he, allowlist=allow, key_authority=KeyAuthority(he, allow))
    with pytest.raises(UsageError, match="secret"):
        make_qsafe_mod(he, clients[0])
    with pytest.raises(UsageError, match="cannot run on encrypted"):
        QsafeEncryptedAggregation(FedAvg(), context=he.public(), allowlist=allow,
                                  key_authority=KeyAuthority(he, allow), defense="median")
    other = HEContext.generate().public()
    with pytest.raises(HEMismatchError, match="expects HE context"):
        client_reply(make_qsafe_mod(he.public(), clients[0]), train_message(10, 1, other.fingerprint), deltas(1)[0])
