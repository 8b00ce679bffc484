"""Item 5: a device is counted once. The single recorded H100 report copied 8 times does not satisfy a policy
requiring 8 GPUs: the copies are denied as duplicated device evidence (exit 15) and evidence.count.gpu is 1; the
real 8-GPU PPCIe evidence counts 8 distinct devices."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from qsafe.attestation import appraise, load_evidence, load_policy

from .conftest import AT, ATTESTATIONS, HOPPER, HOPPER_NONCE, HOPPER_POLICY, leftovers

EVIDENCE = ATTESTATIONS / "evidence"
PPCIE_NONCE = bytes.fromhex("4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e")
PPCIE_AT = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.timezone.utc)


def _eight_gpu_policy(tmp_path: Path) -> Path:
    doc = json.loads(HOPPER_POLICY.read_text())
    doc["name"] = "eight-hoppers"
    doc["claims"]["evidence.count.gpu"] = {"at_least": 8}
    path = tmp_path / "eight.json"
    path.write_text(json.dumps(doc))
    return path


def test_one_report_copied_eight_times_is_one_gpu_and_denied(cli, tmp_path: Path) -> None:
    doc = json.loads(HOPPER.read_text())
    assert len(doc["items"]) == 1 and doc["items"][0]["kind"] == "nvidia-gpu"
    doc["items"] = [{**doc["items"][0], "index": i} for i in range(8)]
    copied = tmp_path / "copied.json"
    copied.write_text(json.dumps(doc))
    policy = _eight_gpu_policy(tmp_path)
    result = appraise(load_evidence(copied), load_policy(policy), at=dt.datetime(2024, 5, 1, 0, 1,
                                                                                  tzinfo=dt.timezone.utc),
                      nonce=bytes.fromhex(HOPPER_NONCE))
    assert result.verdict == "deny" and result.claims["evidence.count.gpu"] == 1
    dups = [f for f in result.failed if ".device:" in f]
    assert [f.split(".device")[0] for f in dups] == [f"gpu[{i}]" for i in range(1, 8)]
    assert "evidence.count.gpu: 1 is below 8" in result.failed
    out = tmp_path / "result.json"
    from qsafe import keys

    keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "appraiser", None)
    r = cli(["attest", "verify", copied, "--policy", policy, "--at", AT, "--nonce", HOPPER_NONCE, "-o", out,
             "--key", tmp_path / "appraiser.key"])
    assert r.exit_code == 15 and "gpu[7].device: the same device as gpu[0]" in r.stderr
    assert not leftovers(tmp_path)


def test_eight_distinct_gpus_count_eight(tmp_path: Path) -> None:
    policy = load_policy(_eight_gpu_policy(tmp_path))
    result = appraise(load_evidence(EVIDENCE / "hopper-8gpu-ppcie.evidence.json"), policy, at=PPCIE_AT,
                      nonce=PPCIE_NONCE)
    assert result.claims["evidence.count.gpu"] == 8
    assert not [f for f in result.failed if "device" in f or "count" in f], result.failed


def test_duplicated_snp_and_tdx_reports_count_once() -> None:
    from qsafe.attestation import Evidence

    for name, prefix in (("sev-snp-milan", "snp"), ("tdx", "tdx")):
        ev = load_evidence(EVIDENCE / f"{name}.evidence.json")
        signed = [i for i in ev.items if i["kind"] in ("sev-snp", "tdx")]
        doubled = Evidence(ev.collected_at, ev.nonce, [*ev.items, *signed])
        at = dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.timezone.utc) if prefix == "snp" else \
            dt.datetime(2025, 6, 19, 11, 16, 3, tzinfo=dt.timezone.utc)
        policy = load_policy(ATTESTATIONS / "policies" / ("amd-sev-snp.json" if prefix == "snp" else "intel-tdx.json"))
        single = appraise(ev, policy, at=at, nonce=ev.nonce)
        result = appraise(doubled, policy, at=at, nonce=ev.nonce)
        assert not [f for f in single.failed if ".device:" in f]
        assert any(f.startswith(f"{prefix}[1].device: the same device as {prefix}[0]") for f in result.failed), \
            (name, result.failed)
        assert result.verdict == "deny"
