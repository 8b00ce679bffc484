"""Audit trail: a written log verifies; every kind of tampering raises AuditLogError naming the first broken record."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsafe.errors import AuditLogError
from qsafe.federated.audit import AuditWriter, canonical, verify_audit_log
from qsafe.keys import PrivateKey, generate

ROUNDS, CLIENTS = 3, 4


def entry(rnd: int, client: int) -> dict[str, object]:
    return {"client": client, "key_id": f"sha256:{client:064x}", "digest": f"sha256:{rnd * 100 + client:064x}",
            "norm": 1.5 + client, "decision": "accepted", "weight": 0.25, "note": ""}


@pytest.fixture(scope="module")
def signer() -> PrivateKey:
    return generate()


@pytest.fixture()
def log(tmp_path: Path, signer: PrivateKey) -> Path:
    stream = io.BytesIO()
    writer = AuditWriter(stream, signer, {"defense": "krum", "seed": 0})
    for rnd in range(1, ROUNDS + 1):
        writer.round(rnd, [entry(rnd, c) for c in range(CLIENTS)], f"sha256:{rnd:064x}")
    path = tmp_path / "audit.jsonl"
    path.write_bytes(stream.getvalue())
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def rewrite(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in edit(lines(path))))


def test_log_verifies(log: Path, signer: PrivateKey) -> None:
    summary = verify_audit_log(log, signer.public_key())
    per_round = CLIENTS + 1
    assert (summary.rounds, summary.records) == (ROUNDS, 1 + ROUNDS * per_round)
    records = [json.loads(x) for x in lines(log)]
    assert [r["type"] for r in records[:7]] == ["header"] + ["client"] * 4 + ["round-head", "client"]
    assert records[3]["norm"] == 3.5 and records[3]["decision"] == "accepted"


def _edit_record(number: int, **changes: object) -> Callable[[list[bytes]], list[bytes]]:
    def edit(all_lines: list[bytes]) -> list[bytes]:
        record = json.loads(all_lines[number - 1])
        record.update(changes)
        all_lines[number - 1] = canonical(record)
        return all_lines
    return edit


def test_changed_client_record_is_named(log: Path, signer: PrivateKey) -> None:
    rewrite(log, _edit_record(8, weight=0.9))  # round 2, client 1 (records: 1 header, 2-5, 6 head, 7-10)
    with pytest.raises(AuditLogError, match=r"^record 8 \(round 2, client 1\): hash chain broken"):
        verify_audit_log(log, signer.public_key())


def test_removed_record_names_the_one_before_the_gap(log: Path, signer: PrivateKey) -> None:
    rewrite(log, lambda ls: ls[:3] + ls[4:])
    with pytest.raises(AuditLogError, match=r"^record 3 \(round 1, client 1\): hash chain broken"):
        verify_audit_log(log, signer.public_key())


def test_changed_last_head_fails_its_signature(log: Path, signer: PrivateKey) -> None:
    last = len(lines(log))
    rewrite(log, _edit_record(last, aggregate_digest="sha256:" + "f" * 64))
    with pytest.raises(AuditLogError, match=rf"^record {last} \(round 3, round-head\): round head signature"):
        verify_audit_log(log, signer.public_key())


def test_rechained_forgery_fails_the_signature(log: Path, signer: PrivateKey) -> None:
    # an attacker who rewrites a record AND recomputes every later link still cannot re-sign the head
    import hashlib
    all_lines = lines(log)
    record = json.loads(all_lines[2])
    record["decision"] = "rejected"
    all_lines[2] = canonical(record)
    for i in range(3, len(all_lines)):
        nxt = json.loads(all_lines[i])
        nxt["prev"] = hashlib.sha256(all_lines[i - 1]).hexdigest()
        all_lines[i] = canonical(nxt)
    log.write_bytes(b"".join(x + b"\n" for x in all_lines))
    with pytest.raises(AuditLogError, match=r"^record 6 \(round 1, round-head\): round head signature"):
        verify_audit_log(log, signer.public_key())


def test_cut_inside_a_round_is_refused(log: Path, signer: PrivateKey) -> None:
    rewrite(log, lambda ls: ls[:-2])
    with pytest.raises(AuditLogError, match="after the last signed round head"):
        verify_audit_log(log, signer.public_key())


def test_other_key_is_refused(log: Path) -> None:
    with pytest.raises(AuditLogError, match=r"^record 1: the log is signed by sha256:"):
        verify_audit_log(log, generate().public_key())


def test_reserialised_record_is_refused(log: Path, signer: PrivateKey) -> None:
    rewrite(log, lambda ls: [ls[0]] + [json.dumps(json.loads(ls[1]), indent=1).replace("\n", "").encode()] + ls[2:])
    with pytest.raises(AuditLogError, match=r"^record 2 \(round 1, client 0\)"):
        verify_audit_log(log, signer.public_key())


def test_garbage_and_empty(log: Path, signer: PrivateKey, tmp_path: Path) -> None:
    rewrite(log, lambda ls: ls[:4] + [b"{not json"] + ls[4:])
    with pytest.raises(AuditLogError, match=r"^record 5: not a JSON object"):
        verify_audit_log(log, signer.public_key())
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(AuditLogError, match="empty"):
        verify_audit_log(empty, signer.public_key())


def test_cli_verify(cli: Callable[..., object], log: Path, signer: PrivateKey, tmp_path: Path) -> None:
    pub = tmp_path / "agg.pub"
    pub.write_bytes(signer.public_key().to_pem())
    ok = cli(["fl", "audit", "verify", str(log), "--key", str(pub)])
    assert (ok.exit_code, ok.stdout, ok.stderr) == (0, "", "")  # type: ignore[attr-defined]
    as_json = cli(["fl", "audit", "verify", str(log), "--key", str(pub), "--json"])
    assert json.loads(as_json.stdout)["rounds"] == ROUNDS  # type: ignore[attr-defined]
    rewrite(log, _edit_record(4, norm=0.1))
    bad = cli(["fl", "audit", "verify", str(log), "--key", str(pub)])
    assert bad.exit_code == 17  # type: ignore[attr-defined]
    assert bad.stderr.startswith("qsafe: error: record 4 (round 1, client 2)")  # type: ignore[attr-defined]
    assert "qsafe: hint:" in bad.stderr and bad.stdout == ""  # type: ignore[attr-defined]


def _small_log(signer: PrivateKey) -> bytes:
    stream = io.BytesIO()
    writer = AuditWriter(stream, signer, {"defense": "median"})
    for rnd in (1, 2):
        writer.round(rnd, [entry(rnd, c) for c in range(2)], f"sha256:{rnd:064x}")
    return stream.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_or_appended_line_is_refused(data: st.DataObject, signer: PrivateKey,
                                                      tmp_path: Path) -> None:
    original = _small_log(signer)
    if data.draw(st.booleans(), label="flip"):
        pos = data.draw(st.integers(0, len(original) - 1), label="position")
        bit = data.draw(st.integers(0, 7), label="bit")
        tampered = original[:pos] + bytes([original[pos] ^ (1 << bit)]) + original[pos + 1:]
    else:
        tampered = original + data.draw(st.binary(min_size=1, max_size=40), label="appended") + b"\n"
    path = tmp_path / "t.jsonl"
    path.write_bytes(tampered)
    with pytest.raises(AuditLogError, match=r"^(record \d+|.*empty)"):
        verify_audit_log(path, signer.public_key())
