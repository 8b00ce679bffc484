"""Item 6: one hardened JSON reader. Every refused construct is a FormatError (exit 3) naming the input; the
commands that read JSON (verify, attest verify, attest check-result, fl audit) refuse it without writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qsafe import _json, _limits
from qsafe.errors import FormatError

from .conftest import AT, HOPPER, HOPPER_NONCE, HOPPER_POLICY, leftovers, snapshot

HOSTILE: dict[str, bytes] = {
    "NaN": b'{"a": NaN}',
    "Infinity": b'{"a": Infinity}',
    "-Infinity": b'{"a": [-Infinity]}',
    "float overflow": b'{"a": 1e400}',
    "5000-digit integer": b'{"a": 1' + b"0" * 4999 + b"}",
    "10**400": b'{"clip": 1' + b"0" * 400 + b"}",
    "integer beyond uint64": b'{"a": 18446744073709551616}',
    "integer below int64": b'{"a": -9223372036854775809}',
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "nested 65 deep": b'{"a":' * 65 + b"1" + b"}" * 65,
    "duplicate key": b'{"name": "a", "name": "b"}',
    "nested duplicate key": b'{"x": {"k": 1, "k": 1}}',
    "lone high surrogate": b'{"a": "\\ud800"}',
    "lone low surrogate key": b'{"\\udc00": 1}',
    "reversed surrogate pair": b'["\\udc00\\ud800"]',
    "not UTF-8": b'{"a": "\xff"}',
    "UTF-16": '{"a": 1}'.encode("utf-16"),
    "UTF-8 BOM": b'\xef\xbb\xbf{"a": 1}',
    "control character in string": b'{"a": "x\x1by"}',
    "trailing garbage": b'{"a": 1} x',
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_json_is_a_format_error_naming_the_input(name: str) -> None:
    with pytest.raises(FormatError) as info:
        _json.loads(HOSTILE[name], "policy evil.json")
    assert info.value.exit_code == 3
    assert "policy evil.json" in str(info.value)


def test_accepted_json() -> None:
    assert _json.loads(b'{"a": [1, 2.5, "x", null, true], "b": {"c": -3}}', "x") == {
        "a": [1, 2.5, "x", None, True], "b": {"c": -3}}
    assert _json.loads('"\\ud83d\\ude00"', "x") == "\U0001f600"  # a surrogate PAIR is one character
    assert _json.loads(b'"\xf0\x9f\x98\x80"', "x") == "\U0001f600"
    deep = b"[" * _limits.JSON_MAX_DEPTH + b"]" * _limits.JSON_MAX_DEPTH
    assert _json.loads(deep, "x") is not None
    assert _json.loads(str(_limits.JSON_MAX_INT).encode(), "x") == _limits.JSON_MAX_INT
    assert _json.loads(str(_limits.JSON_MIN_INT).encode(), "x") == _limits.JSON_MIN_INT
    assert _json.loads(b"1e308", "x") == 1e308


def test_size_cap_and_file_reader(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="larger than 10 bytes"):
        _json.loads(b"[" + b"1," * 10 + b"1]", "x", max_bytes=10)
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * 100 + b"0]")
    with pytest.raises(FormatError, match="larger than 50 bytes"):
        _json.load_file(big, "evidence", max_bytes=50)
    with pytest.raises(FormatError, match="is a directory"):
        _json.load_file(tmp_path, "evidence")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T23:59:59Z",
                                  "9000-01-01T00:00:00Z", "not a time", "2024-13-01T00:00:00Z"])
def test_timestamps_out_of_range_are_format_errors(text: str) -> None:
    with pytest.raises(FormatError):
        _json.parse_time(text)


def test_timestamp_in_range() -> None:
    assert _json.parse_time("2024-05-01T02:01:00+02:00").isoformat() == "2024-05-01T00:01:00+00:00"
    assert _json.parse_time("2024-05-01T00:01:00").tzinfo is not None


# --- through the commands -------------------------------------------------------------------------------------

def _policy_with_duplicate_key(tmp_path: Path) -> Path:
    text = HOPPER_POLICY.read_text()
    doc = json.loads(text)
    # the second "name" would win in Python, the first in other readers: two documents, one digest
    dup = text.replace('"name":', '"name": "shadow", "name":', 1)
    assert dup != text and json.loads(dup)["name"] == doc["name"]
    path = tmp_path / "dup-policy.json"
    path.write_text(dup)
    return path


def test_policy_with_duplicate_keys_is_refused(cli, tmp_path: Path) -> None:
    bad = _policy_with_duplicate_key(tmp_path)
    r = cli(["attest", "verify", HOPPER, "--policy", bad, "--at", AT, "--nonce", HOPPER_NONCE])
    assert r.exit_code == 3 and r.stdout == ""
    assert "duplicate key 'name'" in r.stderr and "dup-policy.json" in r.stderr


@pytest.mark.parametrize("edit", ["nan", "time", "deep", "bigint"])
def test_hostile_evidence_is_refused_and_no_result_written(cli, tmp_path: Path, edit: str) -> None:
    text = HOPPER.read_text()
    doc = json.loads(text)
    if edit == "nan":
        text = text.replace('"nonce":', '"x": NaN, "nonce":', 1)
    elif edit == "time":
        doc["collected_at"] = "0001-01-01T00:00:00+14:00"
        text = json.dumps(doc)
    elif edit == "deep":
        text = text.replace('"nonce":', '"x": ' + "[" * 5000 + "]" * 5000 + ', "nonce":', 1)
    else:
        text = text.replace('"nonce":', '"x": ' + "9" * 5000 + ', "nonce":', 1)
    bad = tmp_path / "evidence.json"
    bad.write_text(text)
    out = tmp_path / "result.json"
    (tmp_path / "k").mkdir()
    from qsafe import keys
    keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "k" / "appraiser", None)
    before = snapshot(tmp_path)
    r = cli(["attest", "verify", bad, "--policy", HOPPER_POLICY, "--at", AT, "--nonce", HOPPER_NONCE,
             "-o", out, "--key", tmp_path / "k" / "appraiser.key"])
    assert r.exit_code == 3, r.stderr
    assert "evidence.json" in r.stderr and r.stdout == ""
    assert snapshot(tmp_path) == before and not out.exists() and not leftovers(tmp_path)


def test_verification_time_out_of_range_is_usage_error(cli) -> None:
    r = cli(["attest", "verify", HOPPER, "--policy", HOPPER_POLICY, "--at", "0001-01-01T00:00:00+14:00"])
    assert r.exit_code == 2 and "out of range" in r.stderr


@pytest.mark.parametrize("name", ["NaN", "5000-digit integer", "nested 100,000 deep", "lone high surrogate",
                                  "duplicate key"])
def test_hostile_bundle_is_refused(cli, ws: Path, name: str) -> None:
    sig = ws / "model" / "model.sig"
    doc = sig.read_text()
    payload = HOSTILE[name].decode("utf-8")
    # splice the hostile value in as an extra member of the top-level object
    bad = ws / "bad.sig"
    bad.write_text('{"x": ' + payload + ", " + doc.lstrip()[1:])
    before = snapshot(ws)
    r = cli(["verify", ws / "model", "--key", ws / "signer.pub", "--signature", bad])
    assert r.exit_code == 3, r.stderr
    assert "bad.sig" in r.stderr
    r = cli(["inspect", bad])
    assert r.exit_code == 3 and "bad.sig" in r.stderr
    assert snapshot(ws) == before


def test_hostile_result_envelope_is_refused(cli, ws: Path) -> None:
    bad = ws / "result.json"
    bad.write_bytes(b'{"payload": "", "payloadType": "x", "signatures": [1, 2], "x": NaN}')
    r = cli(["attest", "check-result", bad, "--key", ws / "signer.pub"])
    assert r.exit_code == 3 and "result.json" in r.stderr and "NaN" in r.stderr
    bad.write_bytes(b'{"payload": "", "payloadType": "x", "signatures": [1, 2]}')
    r = cli(["attest", "check-result", bad, "--key", ws / "signer.pub"])
    assert r.exit_code == 3 and "not a signed attestation result" in r.stderr


def test_hostile_audit_log_lines_are_rejected_not_crashes(cli, ws: Path) -> None:
    import io

    from qsafe import keys
    from qsafe.federated.audit import AuditWriter

    signer = keys.load_private_key(ws / "signer.key")
    stream = io.BytesIO()
    AuditWriter(stream, signer, {"defense": "krum"}).round(1, [], "sha256:" + "0" * 64)
    log = ws / "audit.jsonl"
    good = stream.getvalue().splitlines()
    for hostile in (b'{"type": NaN}', b'{"a": 1, "a": 2}', b"[" * 100_000, b'{"x": "\\ud800"}'):
        log.write_bytes(b"\n".join([good[0], hostile, *good[1:]]) + b"\n")
        r = cli(["fl", "audit", "verify", log, "--key", ws / "signer.pub"])
        assert r.exit_code == 17, (hostile[:20], r.stderr)
        assert "record 2" in r.stderr
