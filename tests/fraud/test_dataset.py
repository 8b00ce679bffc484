"""The signed dataset manifest: verification, tampered copies refused with their rows named, CLI transcripts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from qsafe.errors import DatasetMismatchError, FormatError, SignatureError
from qsafe.fraud.data import parse_csv
from qsafe.fraud.dataset import build_manifest, read_leaves, sign_manifest, verify_dataset, verify_manifest
from tests.fraud.conftest import CSV

RAW = CSV.read_bytes()


@pytest.fixture(scope="module")
def signed(signer):  # type: ignore[no-untyped-def]
    manifest = build_manifest(parse_csv(RAW, "creditcard_sample.csv"), RAW, name="creditcard_sample.csv")
    return sign_manifest(manifest, signer), b"".join(manifest.leaves), manifest


def _edit(raw: bytes, row: int, new: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines[row + 1] = new
    return b"\n".join(lines)


def test_untouched_data_verifies(signed, signer) -> None:  # type: ignore[no-untyped-def]
    env, leaves, manifest = signed
    data, verified = verify_dataset(RAW, env, [signer.public_key()], leaves=leaves)
    assert verified.root == manifest.root and data.n == 5412
    assert verified.digest.startswith("rfc9162-sha256-rows:")
    assert verify_manifest(env, [signer.public_key()]).class_counts == {"0": 4920, "1": 492}


def test_changed_rows_are_named(signed, signer) -> None:  # type: ignore[no-untyped-def]
    env, leaves, _ = signed
    rows = RAW.split(b"\n")
    raw = _edit(RAW, 17, rows[18].replace(b",0\r", b",1\r") if rows[18].endswith(b"\r") else rows[18][:-1] + b"1")
    raw = _edit(raw, 4000, rows[4001].replace(b".", b"9", 1))
    with pytest.raises(DatasetMismatchError, match=r"changed row\(s\) 17, 4000") as err:
        verify_dataset(raw, env, [signer.public_key()], leaves=leaves)
    assert err.value.changed_rows == [17, 4000] and err.value.exit_code == 12


def test_inserted_and_deleted_rows_are_named(signed, signer) -> None:  # type: ignore[no-untyped-def]
    env, leaves, _ = signed
    lines = RAW.split(b"\n")
    inserted = b"\n".join(lines[:101] + [lines[50]] + lines[101:])
    with pytest.raises(DatasetMismatchError, match=r"inserted row\(s\) 100") as err:
        verify_dataset(inserted, env, [signer.public_key()], leaves=leaves)
    assert err.value.inserted_rows == [100]
    deleted = b"\n".join(lines[:3001] + lines[3002:])
    with pytest.raises(DatasetMismatchError, match=r"deleted row\(s\) 3000"):
        verify_dataset(deleted, env, [signer.public_key()], leaves=leaves)


def test_without_the_leaf_file_a_change_is_still_refused(signed, signer) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = signed
    raw = _edit(RAW, 5, RAW.split(b"\n")[6].replace(b"1", b"2", 1))
    with pytest.raises(DatasetMismatchError, match="pass the signed leaf file"):
        verify_dataset(raw, env, [signer.public_key()])
    with pytest.raises(DatasetMismatchError, match="line endings"):
        verify_dataset(RAW.rstrip(b"\n"), env, [signer.public_key()])


def test_wrong_key_tampered_manifest_and_foreign_leaves(signed, signer, other_signer) -> None:  # type: ignore[no-untyped-def]
    env, leaves, manifest = signed
    with pytest.raises(SignatureError):
        verify_dataset(RAW, env, [other_signer.public_key()], leaves=leaves)
    doc = json.loads(env)
    st = json.loads(base64.b64decode(doc["payload"]))
    st["predicate"]["labels"]["counts"]["1"] = 400
    doc["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    with pytest.raises(SignatureError):
        verify_manifest(json.dumps(doc).encode(), [signer.public_key()])
    with pytest.raises(FormatError, match="other data"):
        read_leaves(leaves[:-32] + bytes(32), manifest)
    with pytest.raises(FormatError, match="not 32 x"):
        read_leaves(leaves[:-1], manifest)
    with pytest.raises(FormatError):
        verify_manifest(b"{not json", [signer.public_key()])


def test_cli_sign_and_verify_transcripts(cli, tmp_path: Path, signer) -> None:  # type: ignore[no-untyped-def]
    from qsafe import keys

    keys.write_key_pair(signer, tmp_path / "owner", None)
    csv = tmp_path / "data.csv"
    csv.write_bytes(RAW)
    out = cli(["dataset", "sign", csv, "--key", tmp_path / "owner.key", "-o", tmp_path / "m.json", "--json"])
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == 5412 and (tmp_path / "m.json.leaves").stat().st_size == 5412 * 32
    ok = cli(["dataset", "verify", csv, "--manifest", tmp_path / "m.json", "--key", tmp_path / "owner.pub"])
    assert ok.exit_code == 0 and ok.stdout == "" and ok.stderr == ""
    csv.write_bytes(_edit(RAW, 2, RAW.split(b"\n")[3].replace(b"0", b"7", 1)))
    bad = cli(["dataset", "verify", csv, "--manifest", tmp_path / "m.json", "--key", tmp_path / "owner.pub"])
    assert bad.exit_code == 12
    assert "changed row(s) 2 " in bad.stderr and "qsafe: hint:" in bad.stderr
    same = cli(["dataset", "sign", csv, "--key", tmp_path / "owner.key", "-o", csv])
    assert same.exit_code == 2
