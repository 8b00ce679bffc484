"""`qsafe fl simulate` / `qsafe fl audit verify`: bad inputs are refused before any simulation, nothing is lost."""

from __future__ import annotations

from pathlib import Path

from tests.cli_robustness.conftest import digests


def test_audit_log_never_replaces_its_signing_key(cli, ws: Path) -> None:
    before = digests(ws)
    r = cli(["fl", "simulate", "--rounds", "1", "--audit-log", "signer.key", "--audit-key", "signer.key"])
    assert r.exit_code == 2
    assert "qsafe: error: output signer.key is the input signer.key; qsafe never overwrites its input" in r.stderr
    assert digests(ws) == before


def test_audit_log_pub_never_replaces_its_signing_key(cli, ws: Path) -> None:
    (ws / "audit.jsonl.pub").write_bytes((ws / "signer.key").read_bytes())
    before = digests(ws)
    r = cli(["fl", "simulate", "--rounds", "1", "--audit-log", "audit.jsonl", "--audit-key", "audit.jsonl.pub"])
    assert r.exit_code == 2
    assert "is the input audit.jsonl.pub" in r.stderr
    assert digests(ws) == before


def test_public_key_as_audit_key_is_a_key_error(cli, ws: Path) -> None:
    r = cli(["fl", "simulate", "--rounds", "1", "--audit-log", "a.jsonl", "--audit-key", "signer.pub"])
    assert r.exit_code == 4
    assert "qsafe: error: signer.pub is a public key" in r.stderr
    assert "PREFIX.key" in r.stderr
    assert not (ws / "a.jsonl").exists()


def test_audit_verify_unreadable_log_is_a_format_error(cli, ws: Path) -> None:
    r = cli(["fl", "audit", "verify", "/proc/self/mem", "--key", "signer.pub"])
    assert r.exit_code == 3
    assert "qsafe: error: cannot read audit log /proc/self/mem" in r.stderr
    assert "internal error" not in r.stderr
