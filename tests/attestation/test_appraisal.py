"""Policy evaluation, freshness modes and the signed result, on real recorded evidence."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from qsafe import keys
from qsafe.attestation import (
    NonceRegistry,
    appraise,
    binding_hash,
    policy_from_json,
    result_statement,
    sign_result,
    verify_evidence,
    verify_result,
)
from qsafe.attestation.policy import evaluate_rule
from qsafe.errors import AttestationError, FormatError, SignatureError

from .conftest import ATT, BLACKWELL_AT, HOPPER_AT, HOPPER_NONCE, PPCIE_AT, PPCIE_NONCE, evidence, policy

AT = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def test_hopper_allowed_with_recorded_challenge(hopper) -> None:
    result = verify_evidence(hopper, policy("nvidia-hopper-cc"), at=HOPPER_AT, nonce=HOPPER_NONCE)
    assert result.allowed
    assert result.freshness["mode"] == "challenge"
    assert result.freshness["bindingChecked"] is False and result.freshness["replayedEvidenceAccepted"] is False
    assert result.claims["gpu[0].driver_version"] == "550.90.07"


def test_hopper_without_nonce_denied_naming_freshness(hopper) -> None:
    with pytest.raises(AttestationError) as info:
        verify_evidence(hopper, policy("nvidia-hopper-cc"), at=HOPPER_AT)
    assert info.value.failed_claims == ["gpu[0].freshness"]
    assert info.value.exit_code == 15


def test_every_failed_claim_is_named() -> None:
    ev = evidence("hopper-8gpu-ppcie")
    with pytest.raises(AttestationError) as info:
        verify_evidence(ev, policy("nvidia-blackwell-cc"), at=PPCIE_AT + dt.timedelta(hours=1), nonce=PPCIE_NONCE)
    names = info.value.failed_claims
    assert [f"gpu[{i}].arch" for i in range(8)] == [n for n in names if n.endswith(".arch")]
    assert "evidence.collected_at" in names
    assert "gpu[7].driver_version" not in names  # 590.12 >= 575.0


def test_eight_gpus_allowed() -> None:
    result = appraise(evidence("hopper-8gpu-ppcie"), policy("nvidia-hopper-cc"), at=PPCIE_AT, nonce=PPCIE_NONCE)
    assert result.allowed and result.claims["evidence.count.gpu"] == 8


def test_missing_claim_denies(hopper) -> None:
    doc = copy.deepcopy(policy("nvidia-hopper-cc").doc)
    doc["claims"]["gpu.no_such_claim"] = {"equals": "x"}
    doc["claims"]["tdx.tcb_status"] = {"equals": "UpToDate"}
    result = appraise(hopper, policy_from_json(doc), at=HOPPER_AT, nonce=HOPPER_NONCE)
    assert result.verdict == "deny"
    assert any(f.startswith("gpu[0].no_such_claim: missing") for f in result.failed)
    assert any(f.startswith("tdx.tcb_status: missing") for f in result.failed)


def test_binding_mode_and_replay_in_development_policy(hopper) -> None:
    dev = policy("unsafe-development-replay")
    result = verify_evidence(hopper, dev, at=AT)
    assert result.freshness == {"mode": "replayed", "bindingChecked": False, "nonceChecked": False,
                                "replayedEvidenceAccepted": True, "policyAcceptsReplay": True}
    # A nonce that does not match is still only "replayed" under the dev policy, never "binding".
    result = verify_evidence(hopper, dev, at=AT, nonce=bytes(32), model_digest="sha256:" + "0" * 64)
    assert result.freshness["mode"] == "replayed"


def test_binding_detected_when_report_carries_it(hopper) -> None:
    pol = policy("nvidia-hopper-cc")
    nonce = bytes(range(32))
    binding = binding_hash(nonce, "sha256:" + "ab" * 32, pol.digest)
    assert binding != binding_hash(nonce, "sha256:" + "ab" * 32, policy("nvidia-blackwell-cc").digest)
    assert binding != binding_hash(nonce, "sha256:" + "cd" * 32, pol.digest)
    # The recorded report carries another nonce: binding mode must not be claimed.
    result = appraise(hopper, pol, at=HOPPER_AT, nonce=nonce, model_digest="sha256:" + "ab" * 32)
    assert not result.allowed and result.freshness["mode"] == "failed"


def test_nonce_registry_single_use(hopper) -> None:
    registry = NonceRegistry()
    issued = registry.issue(HOPPER_AT)
    registry.consume(issued, HOPPER_AT)
    with pytest.raises(AttestationError):
        registry.consume(issued, HOPPER_AT)
    result = appraise(hopper, policy("nvidia-hopper-cc"), at=HOPPER_AT, nonce=HOPPER_NONCE, nonce_registry=registry)
    assert any(f.startswith("evidence.nonce:") for f in result.failed)


@pytest.mark.parametrize(
    ("value", "rule", "ok"),
    [
        ("550.90.07", {"version_at_least": "550.54"}, True),
        ("535.104.05", {"version_at_least": "550.54"}, False),
        ("96.00.9F.00.01", {"version_at_least": "96.00.5E.00.00"}, True),
        ("96.00.10.00.01", {"version_at_least": "96.00.0F.00.01"}, True),
        ("96.00.0F.00.01", {"version_at_least": "96.00.10.00.01"}, False),
        ("575.32", {"version_at_least": "575.4"}, True),
        (True, {"equals": 1}, False),
        (1, {"equals": True}, False),
        (False, {"equals": False}, True),
        ("vcek", {"one_of": ["vcek", "vlek"]}, True),
        (["a", "b"], {"allowlist": ["a", "b", "c"]}, True),
        (["a", "z"], {"allowlist": ["a", "b"]}, False),
        (8, {"at_least": 8, "at_most": 8}, True),
        ("8", {"at_least": 1}, False),
        ("2025-12-31T23:58:00Z", {"max_age_seconds": 300}, True),
        ("2025-12-31T23:00:00Z", {"max_age_seconds": 300}, False),
        ("2026-01-01T01:00:00Z", {"max_age_seconds": 300}, False),
        ("not-a-version", {"version_at_least": "1.0"}, False),
    ],
)
def test_operators(value, rule, ok) -> None:
    assert (evaluate_rule(value, rule, AT) is None) is ok


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("require"),
        lambda d: d.update(format="v2"),
        lambda d: d["claims"].update({"gpu.arch": {"equalz": "HOPPER"}}),
        lambda d: d["claims"].update({"gpu.arch": {}}),
        lambda d: d["claims"].update({"bogus.arch": {"equals": "x"}}),
        lambda d: d["freshness"].update(accept=["whatever"]),
        lambda d: d["claims"].update({"gpu.driver_version": {"max_age_seconds": 5}}),
    ],
)
def test_invalid_policies_rejected(mutate) -> None:
    doc = copy.deepcopy(policy("nvidia-hopper-cc").doc)
    mutate(doc)
    with pytest.raises(FormatError):
        policy_from_json(doc)


def test_shipped_policies_valid_and_schema_copies_identical() -> None:
    names = sorted(p.stem for p in (ATT / "policies").glob("*.json"))
    assert names == ["amd-sev-snp", "intel-tdx", "nvidia-blackwell-cc", "nvidia-hopper-cc", "unsafe-development-replay"]
    assert [policy(n).unsafe for n in names] == [False, False, False, False, True]
    packaged = (ATT.parent / "qsafe" / "attestation" / "attestation-policy-v1.schema.json").read_bytes()
    assert packaged == (ATT / "schemas" / "attestation-policy-v1.schema.json").read_bytes()


def test_blackwell_snp_tdx_policies_allow_their_evidence() -> None:
    bw = appraise(evidence("blackwell-rtxpro6000"), policy("nvidia-blackwell-cc"), at=BLACKWELL_AT,
                  nonce=bytes.fromhex("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e"))
    assert bw.allowed, bw.failed
    snp_ev = evidence("sev-snp-milan")
    import base64
    report_data = base64.b64decode(snp_ev.items[0]["report"])[0x50:0x90]
    snp = appraise(snp_ev, policy("amd-sev-snp"), at=dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.timezone.utc),
                   nonce=report_data)
    assert snp.allowed, snp.failed
    tdx_ev = evidence("tdx")
    tdx_nonce = bytes.fromhex("9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9"
                              "eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20")
    tdx = appraise(tdx_ev, policy("intel-tdx"), at=dt.datetime(2025, 6, 19, 11, 16, 3, tzinfo=dt.timezone.utc),
                   nonce=tdx_nonce)
    assert tdx.allowed, tdx.failed


def test_signed_result_round_trip_and_tamper(hopper) -> None:
    key = keys.generate()
    result = appraise(hopper, policy("nvidia-hopper-cc"), at=HOPPER_AT, nonce=HOPPER_NONCE)
    signed = sign_result(result, key)
    statement = verify_result(signed, [key.public_key()])
    assert statement == json.loads(json.dumps(result_statement(result)))
    assert statement["predicate"]["verdict"] == "allow"
    assert statement["subject"][0]["digest"]["sha256"] == hopper.digest().split(":")[1]
    env = json.loads(signed)
    import base64
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["predicate"]["verdict"] = "deny"
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(SignatureError):
        verify_result(json.dumps(env).encode(), [key.public_key()])
    with pytest.raises(SignatureError):
        verify_result(signed, [keys.generate().public_key()])
    with pytest.raises(FormatError):
        verify_result(b"{}", [key.public_key()])


def test_snp_debug_report_denied_naming_the_bit() -> None:
    import base64

    from qsafe.attestation.recorded import import_recorded

    from .conftest import RECORDED

    ev = import_recorded("sev-snp", [RECORDED / "go-sev-guest/attestation.bin", RECORDED / "go-sev-guest/vcek.testcer",
                                     RECORDED / "go-sev-guest/milan.testcer"],
                         collected_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    report_data = base64.b64decode(ev.items[0]["report"])[0x50:0x90]
    result = appraise(ev, policy("amd-sev-snp"), at=dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.timezone.utc),
                      nonce=report_data)
    names = [f.split(":")[0] for f in result.failed]
    assert "snp[0].policy.debug" in names and "snp[0].reported_tcb.snp" in names  # SNP SVN 5 < 8
    assert not any(n.endswith((".signature", ".cert_chain")) for n in names)  # the report itself is genuine


@pytest.mark.parametrize(
    ("name", "kind", "files"),
    [
        ("hopper-h100", "nvidia-report", ["nvtrust/hopperAttestationReport.txt", "nvtrust/hopperCertChain.txt"]),
        ("hopper-8gpu-ppcie", "nvidia-json", ["nvtrust/ppcie_gpu_evidence.json"]),
        ("blackwell-rtxpro6000", "nvidia-report",
         ["trustee/blackwellAttestationReport.txt", "trustee/blackwell_cert_chain_case1.txt"]),
        ("sev-snp-milan", "sev-snp", ["trustee/test-report.bin", "trustee/test-vcek.der", "go-sev-guest/milan.testcer"]),
        ("tdx", "tdx", ["dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json"]),
    ],
)
def test_committed_evidence_is_the_recorded_bytes(name: str, kind: str, files: list[str]) -> None:
    from qsafe.attestation.recorded import import_recorded

    from .conftest import RECORDED

    committed = evidence(name)
    fresh = import_recorded(kind, [RECORDED / f for f in files], collected_at=committed.collected_at)
    strip = [{k: v for k, v in item.items() if k != "provenance"} for item in committed.items]
    assert strip == fresh.items
    assert all("provenance" in item for item in committed.items)
