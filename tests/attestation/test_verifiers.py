"""Offline verifiers on real recorded evidence, and mutated negatives with the specific failure named."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from qsafe._attest import snp, spdm
from qsafe.attestation.recorded import import_recorded
from qsafe.attestation.verifiers import verify_item
from qsafe.errors import FormatError

from .conftest import HOPPER_AT, HOPPER_NONCE, RECORDED, SNP_AT, TDX_AT, evidence

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _gpu(report: str, chain: str) -> dict:
    ev = import_recorded("nvidia-report", [RECORDED / report, RECORDED / chain], collected_at=T0)
    return ev.items[0]


@pytest.mark.parametrize(
    ("report", "chain", "arch", "driver", "trailing"),
    [
        ("nvtrust/hopperAttestationReport.txt", "nvtrust/hopperCertChain.txt", "HOPPER", "550.90.07", 0),
        ("trustee/hopper_coco_report1.txt", "trustee/hopper_coco_certs1.txt", "HOPPER", "580.95.05", 1),
        ("trustee/blackwellAttestationReport.txt", "trustee/blackwell_cert_chain_case1.txt", "BLACKWELL", "595.58.03", 0),
    ],
)
def test_real_gpu_reports_verify(report: str, chain: str, arch: str, driver: str, trailing: int) -> None:
    res = verify_item(_gpu(report, chain), 0, T0, None)
    assert res.failed == {}
    assert res.passed == ["cert_chain", "signature", "fwid"]
    assert res.claims["arch"] == arch
    assert res.claims["driver_version"] == driver
    assert res.claims["trailing_bytes"] == trailing
    assert res.claims["measurement_count"] == 64


def test_trailing_byte_is_outside_signed_range() -> None:
    raw = bytes.fromhex((RECORDED / "trustee/hopper_coco_report1.txt").read_text().strip())
    parsed = spdm.parse_report(raw)
    assert len(raw) == 4130 and len(parsed.signed) + 96 == 4129


def test_blackwell_fwid_matches_fixture_notes() -> None:
    res = verify_item(_gpu("trustee/blackwellAttestationReport.txt", "trustee/blackwell_cert_chain_case1.txt"), 0, T0, None)
    assert res.claims["fwid"].startswith("9b92cc3e53b9265259e1abde16365328")
    assert res.claims["vbios_version"] == "98.02.81.00.01"


def test_nvidia_bad_signature_fixture_rejected() -> None:
    item = _gpu("nvidia-attestation-sdk/hopperAttestationReportInvalidSignature.txt",
                "nvidia-attestation-sdk/hopperCertChain.txt")
    res = verify_item(item, 0, T0, None)
    assert list(res.failed) == ["signature"] and res.claims == {}


def test_gpu_nonce_checked() -> None:
    item = evidence("hopper-h100").items[0]
    assert verify_item(item, 0, HOPPER_AT, HOPPER_NONCE).passed[-1] == "nonce"
    assert list(verify_item(item, 0, HOPPER_AT, bytes(32)).failed) == ["nonce"]


@pytest.mark.parametrize("offset", [40, 200, 3000, -120])
def test_flipped_report_byte_fails_signature(hopper, offset: int) -> None:
    raw = bytearray(bytes.fromhex(hopper.items[0]["report"]))
    raw[offset] ^= 0x01
    item = {**hopper.items[0], "report": raw.hex()}
    res = verify_item(item, 0, HOPPER_AT, None)
    assert "signature" in res.failed or "nonce" in res.failed


def test_truncated_report_is_format_error(hopper) -> None:
    item = {**hopper.items[0], "report": hopper.items[0]["report"][:-200]}
    with pytest.raises(FormatError):
        verify_item(item, 0, HOPPER_AT, None)


def test_chain_not_to_pinned_root(hopper) -> None:
    chain = hopper.items[0]["cert_chain"]
    without_root = chain[: chain.rindex("-----BEGIN CERTIFICATE-----")]
    without_two = without_root[: without_root.rindex("-----BEGIN CERTIFICATE-----")]
    res = verify_item({**hopper.items[0], "cert_chain": without_two}, 0, HOPPER_AT, None)
    assert list(res.failed) == ["cert_chain"]


def test_gpu_chain_with_swapped_leaf_fails(hopper) -> None:
    other = evidence("blackwell-rtxpro6000").items[0]["cert_chain"]
    leaf = other[: other.index("-----END CERTIFICATE-----") + 26]
    rest = hopper.items[0]["cert_chain"]
    rest = rest[rest.index("-----END CERTIFICATE-----") + 26 :]
    res = verify_item({**hopper.items[0], "cert_chain": leaf + rest}, 0, HOPPER_AT, None)
    assert list(res.failed) == ["cert_chain"]


def test_eight_gpu_ppcie_set_verifies() -> None:
    ev = evidence("hopper-8gpu-ppcie")
    assert len(ev.items) == 8
    results = [verify_item(item, i, T0, None) for i, item in enumerate(ev.items)]
    assert all(not r.failed for r in results)
    assert len({item["cert_chain"] for item in ev.items}) == 8  # eight distinct devices
    assert {r.claims["driver_version"] for r in results} == {"590.12"}


def test_snp_reports_verify() -> None:
    res = verify_item(evidence("sev-snp-milan").items[0], 0, SNP_AT, None)
    assert res.failed == {} and res.claims["policy.debug"] is False and res.claims["signing_key"] == "vcek"
    vlek = import_recorded("sev-snp", [RECORDED / "trustee/test-vlek-report.bin", RECORDED / "trustee/test-vlek.der",
                                       RECORDED / "go-sev-guest/milanvlek.testcer"], collected_at=T0)
    res = verify_item(vlek.items[0], 0, T0, None)
    assert res.failed == {} and res.claims["signing_key"] == "vlek" and res.claims["vmpl"] == 1
    # The VLEK certificate expired on 2025-12-10: at a later time the chain fails.
    late = verify_item(vlek.items[0], 0, dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc), None)
    assert list(late.failed) == ["cert_chain"]


def test_snp_tampered_report_fails() -> None:
    item = evidence("sev-snp-milan").items[0]
    raw = bytearray(base64.b64decode(item["report"]))
    raw[0x90] ^= 0x80  # measurement
    res = verify_item({**item, "report": base64.b64encode(bytes(raw)).decode()}, 0, SNP_AT, None)
    assert list(res.failed) == ["signature"]


def test_snp_wrong_length_is_format_error() -> None:
    item = evidence("sev-snp-milan").items[0]
    raw = base64.b64decode(item["report"]) + b"\x00"
    with pytest.raises(FormatError):
        snp.parse_report(raw)


def test_tdx_quote_verifies_at_pinned_time_only() -> None:
    item = evidence("tdx").items[0]
    res = verify_item(item, 0, TDX_AT, None)
    assert res.failed == {} and res.claims["tcb_status"] == "UpToDate"
    late = verify_item(item, 0, dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc), None)
    assert "CrlExpired" in late.failed["quote"]


def test_tdx_outdated_quote_rejected() -> None:
    ev = import_recorded("tdx", [RECORDED / "dcap-qvl/tdx_quote_outdated",
                                 RECORDED / "dcap-qvl/tdx_quote_outdated_collateral.json"], collected_at=T0)
    res = verify_item(ev.items[0], 0, dt.datetime(2026, 2, 18, 11, 58, 51, tzinfo=dt.timezone.utc), None)
    assert "No matching TCB level" in res.failed["quote"]


def test_tdx_tampered_quote_rejected() -> None:
    item = evidence("tdx").items[0]
    raw = bytearray(base64.b64decode(item["quote"]))
    raw[200] ^= 1  # inside the TD report body (MRTD region)
    res = verify_item({**item, "quote": base64.b64encode(bytes(raw)).decode()}, 0, TDX_AT, None)
    assert list(res.failed) == ["quote"]
