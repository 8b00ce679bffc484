"""`qsafe attest` transcripts: exit codes, silent success, named failures, signed results."""

from __future__ import annotations

import json
from pathlib import Path

from qsafe import keys

from .conftest import EVIDENCE, HOPPER_NONCE, POLICIES, RECORDED

HOPPER = EVIDENCE / "hopper-h100.evidence.json"
HOPPER_POLICY = POLICIES / "nvidia-hopper-cc.json"
AT = "2024-05-01T00:01:00Z"


def test_verify_allow_is_silent(cli) -> None:
    r = cli(["attest", "verify", HOPPER, "--policy", HOPPER_POLICY, "--at", AT, "--nonce", HOPPER_NONCE.hex()])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")


def test_verify_deny_names_claims(cli) -> None:
    r = cli(["attest", "verify", HOPPER, "--policy", POLICIES / "nvidia-blackwell-cc.json", "--at", AT,
             "--nonce", HOPPER_NONCE.hex()])
    assert r.exit_code == 15 and r.stdout == ""
    assert "qsafe: error:   gpu[0].arch: 'HOPPER' is not 'BLACKWELL'" in r.stderr
    assert "gpu[0].driver_version: version 550.90.07 is below 575.0" in r.stderr
    assert "qsafe: hint:" in r.stderr


def test_verify_tampered_evidence_denied(cli, tmp_path: Path) -> None:
    doc = json.loads(HOPPER.read_text())
    report = bytearray(bytes.fromhex(doc["items"][0]["report"]))
    report[100] ^= 1
    doc["items"][0]["report"] = report.hex()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = cli(["attest", "verify", bad, "--policy", HOPPER_POLICY, "--at", AT, "--nonce", HOPPER_NONCE.hex()])
    assert r.exit_code == 15 and "gpu[0].signature: GPU report signature does not verify" in r.stderr


def test_verify_signed_result_and_check(cli, tmp_path: Path) -> None:
    key = keys.generate()
    (tmp_path / "k.key").write_bytes(key.to_pem())
    (tmp_path / "k.pub").write_bytes(key.public_key().to_pem())
    out = tmp_path / "result.json"
    r = cli(["attest", "verify", HOPPER, "--policy", HOPPER_POLICY, "--at", AT, "--nonce", HOPPER_NONCE.hex(),
             "-o", out, "--key", tmp_path / "k.key", "--json"])
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["verdict"] == "allow"
    r = cli(["attest", "check-result", out, "--key", tmp_path / "k.pub"])
    assert (r.exit_code, r.stderr) == (0, "")
    # A deny result is written and signed too, and check-result exits 15 on it.
    deny = tmp_path / "deny.json"
    r = cli(["attest", "verify", HOPPER, "--policy", HOPPER_POLICY, "--at", AT, "-o", deny, "--key", tmp_path / "k.key"])
    assert r.exit_code == 15 and deny.exists()
    r = cli(["attest", "check-result", deny, "--key", tmp_path / "k.pub"])
    assert r.exit_code == 15 and "gpu[0].freshness" in r.stderr
    other = keys.generate()
    (tmp_path / "o.pub").write_bytes(other.public_key().to_pem())
    assert cli(["attest", "check-result", out, "--key", tmp_path / "o.pub"]).exit_code == 10


def test_usage_and_format_errors(cli, tmp_path: Path) -> None:
    r = cli(["attest", "verify", HOPPER, "--at", AT])
    assert r.exit_code == 2  # --policy is required
    r = cli(["attest", "verify", HOPPER, "--policy", HOPPER_POLICY, "-o", tmp_path / "r.json"])
    assert r.exit_code == 2 and "--key" in r.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    assert cli(["attest", "verify", junk, "--policy", HOPPER_POLICY]).exit_code == 3
    assert cli(["attest", "verify", HOPPER, "--policy", junk]).exit_code == 3


def test_collect_no_gpu_exit_6_and_software(cli, tmp_path: Path, no_gpu) -> None:
    r = cli(["attest", "collect", "-c", "nvidia-gpu", "-o", tmp_path / "e.json"])
    assert r.exit_code == 6 and "NVML did not initialise" in r.stderr and not (tmp_path / "e.json").exists()
    r = cli(["attest", "collect", "-c", "software", "--nonce", "00" * 32, "-o", tmp_path / "e.json"])
    assert (r.exit_code, r.stderr) == (0, "")
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["nonce"] == "00" * 32 and doc["items"][0]["kind"] == "software"
    r = cli(["attest", "collect", "-c", "tsm", "--tsm-root", tmp_path / "absent"])
    assert r.exit_code == 6


def test_nonce_and_import(cli, tmp_path: Path) -> None:
    r = cli(["attest", "nonce"])
    assert r.exit_code == 0 and len(bytes.fromhex(r.stdout.strip())) == 32
    out = tmp_path / "h.json"
    r = cli(["attest", "import", "nvidia-report", RECORDED / "nvtrust/hopperAttestationReport.txt",
             RECORDED / "nvtrust/hopperCertChain.txt", "--collected-at", "2024-05-01T00:00:00Z", "-o", out])
    assert (r.exit_code, r.stderr) == (0, "")
    assert json.loads(out.read_text())["items"][0]["report"] == json.loads(HOPPER.read_text())["items"][0]["report"]


def test_attest_verify_imports_no_torch_or_tenseal() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qsafe.cli import main\n"
        f"args = ['attest', 'verify', {str(HOPPER)!r}, '--policy', {str(HOPPER_POLICY)!r}, '--at', {AT!r},"
        f" '--nonce', {HOPPER_NONCE.hex()!r}]\n"
        "try:\n    main(args)\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('torch', 'tenseal', 'numpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
