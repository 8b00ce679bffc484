"""Collectors: software environment, configfs-tsm against a fake directory fed with real reports, NVML with an
injected module returning recorded reports (the GPU is the boundary this machine lacks), entry points."""

from __future__ import annotations

import base64
import struct
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from qsafe import plugins
from qsafe._attest import tsm
from qsafe.attestation import (
    NvidiaGpuCollector,
    ReplayCollector,
    SoftwareCollector,
    TsmCollector,
    appraise,
    binding_hash,
    collect,
)
from qsafe.errors import FormatError, MissingDependencyError, UnavailableError, UsageError

from .conftest import EVIDENCE, HOPPER_NONCE, RECORDED, SNP_AT, evidence, policy


def test_software_collector_claims() -> None:
    (item,) = SoftwareCollector().collect(bytes(32))
    claims = item["claims"]
    assert item["kind"] == "software"
    assert claims["python"] == ".".join(map(str, sys.version_info[:3]))
    assert claims["distributions_digest"].startswith("sha256:") and claims["distributions_count"] > 5
    assert "torch" not in claims or "torch" in sys.modules


def test_software_collector_does_not_import_torch() -> None:
    import subprocess

    code = "import sys; from qsafe.attestation import SoftwareCollector; SoftwareCollector().collect(b'0'*32); " \
           "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


class FakeTsm:
    """A directory shaped like /sys/kernel/config/tsm/report whose entries return recorded blobs."""

    def __init__(self, root: Path, provider: str, outblob: bytes, auxblob: bytes | None = None, bump: bool = False):
        self.root, self.provider, self.outblob, self.auxblob, self.bump = root, provider, outblob, auxblob, bump
        root.mkdir(parents=True, exist_ok=True)


def _fake_request(fake: FakeTsm, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    written: list[bytes] = []
    real_mkdir = tsm.os.mkdir

    def mkdir(path, *a, **k):  # the kernel populates a new entry; the fake does the same
        real_mkdir(path)
        p = Path(path)
        (p / "provider").write_text(fake.provider + "\n")
        (p / "generation").write_text("1\n")
        (p / "outblob").write_bytes(fake.outblob)
        if fake.auxblob is not None:
            (p / "auxblob").write_bytes(fake.auxblob)

    real_read = tsm._read
    reads = {"n": 0}

    def read(path: Path) -> bytes:
        if path.name == "inblob":
            return b""
        if path.name == "generation" and fake.bump:
            reads["n"] += 1
            return str(reads["n"]).encode()
        return real_read(path)

    monkeypatch.setattr(tsm.os, "mkdir", mkdir)
    monkeypatch.setattr(tsm, "_read", read)
    return written


def _cert_table(entries: dict[str, bytes]) -> bytes:
    guids = {"vcek": "63da758d-e664-4564-adc5-f4b93be8accd", "ask": "4ab7b379-bbac-4fe4-a02f-05aef327c782",
             "ark": "c0b406a4-a803-4952-9743-3fb6014cd0ae"}
    header_len = 24 * (len(entries) + 1)
    table, body = b"", b""
    for name, der in entries.items():
        table += uuid.UUID(guids[name]).bytes_le + struct.pack("<II", header_len + len(body), len(der))
        body += der
    return table + bytes(24) + body


def test_tsm_sev_snp_with_real_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from qsafe._attest.x509chain import load_der_or_pem

    report = (RECORDED / "trustee/test-report.bin").read_bytes()
    ask, ark = load_der_or_pem((RECORDED / "go-sev-guest/milan.testcer").read_bytes())
    aux = _cert_table({"vcek": (RECORDED / "trustee/test-vcek.der").read_bytes(),
                       "ask": ask.public_bytes(Encoding.DER), "ark": ark.public_bytes(Encoding.DER)})
    fake = FakeTsm(tmp_path / "report", "sev_guest", report, aux)
    _fake_request(fake, monkeypatch)
    items = TsmCollector(fake.root).collect(bytes(32))
    assert items[0]["kind"] == "sev-snp" and base64.b64decode(items[0]["report"]) == report
    assert "configfs-tsm provider sev_guest" in items[0]["provenance"]
    assert list(fake.root.iterdir())  # the fake keeps its entry (files); the kernel's would be removed
    ev = collect([TsmCollector(fake.root)], nonce=bytes(32))
    result = appraise(ev, policy("amd-sev-snp"), at=SNP_AT, nonce=report[0x50:0x90])
    assert [f for f in result.failed if not f.startswith("evidence.collected_at")] == []


def test_tsm_tdx_quote_and_generation_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quote = (RECORDED / "dcap-qvl/tdx_quote").read_bytes()
    fake = FakeTsm(tmp_path / "r", "tdx_guest", quote)
    _fake_request(fake, monkeypatch)
    (item,) = TsmCollector(fake.root).collect(bytes(32))
    assert item["kind"] == "tdx" and base64.b64decode(item["quote"]) == quote and item["collateral"] is None
    fake.bump = True
    with pytest.raises(FormatError, match="generation"):
        TsmCollector(fake.root).collect(bytes(32))


def test_tsm_absent_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError):
        TsmCollector(tmp_path / "nothing").collect(bytes(32))
    with pytest.raises(FormatError):
        tsm.request_report(bytes(65), tmp_path)


def _fake_nvml(report: bytes, chain: bytes, cc: int = 1, count: int = 1) -> SimpleNamespace:
    def arr(data: bytes):
        return list(data) + [0] * 16

    return SimpleNamespace(
        nvmlDeviceGetCount=lambda: count,
        nvmlSystemGetConfComputeState=lambda: SimpleNamespace(environment=2, ccFeature=cc, devToolsMode=0),
        nvmlSystemGetConfComputeGpusReadyState=lambda: 1,
        nvmlSystemGetDriverVersion=lambda: b"550.90.07",
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetConfComputeGpuAttestationReport=lambda h, nonce: SimpleNamespace(
            attestationReport=arr(report), attestationReportSize=len(report)),
        nvmlDeviceGetConfComputeGpuCertificate=lambda h: SimpleNamespace(
            attestationCertChain=arr(chain), attestationCertChainSize=len(chain)),
    )


def test_nvidia_collector_with_recorded_device() -> None:
    hop = evidence("hopper-h100").items[0]
    nvml = _fake_nvml(bytes.fromhex(hop["report"]), hop["cert_chain"].encode())
    ev = collect([NvidiaGpuCollector(nvml)], nonce=HOPPER_NONCE)
    assert [i["kind"] for i in ev.items] == ["nvidia-cc", "nvidia-gpu"]
    assert ev.items[0]["claims"]["cc_feature"] == "on" and ev.items[0]["claims"]["gpus_ready"] is True
    assert appraise(ev, policy("nvidia-hopper-cc"), at=ev.collected_at, nonce=HOPPER_NONCE).allowed
    # A device answering with a report for another nonce is caught: binding mode sees a stale nonce.
    pol = policy("nvidia-hopper-cc")
    bound = collect([NvidiaGpuCollector(nvml)], nonce=bytes(32), policy=pol, model_digest="sha256:" + "1" * 64)
    assert bound.nonce == binding_hash(bytes(32), "sha256:" + "1" * 64, pol.digest)
    result = appraise(bound, pol, nonce=bytes(32), model_digest="sha256:" + "1" * 64)
    assert "gpu[0].freshness" in [f.split(":")[0] for f in result.failed]


def test_nvidia_collector_cc_off_gives_no_reports() -> None:
    hop = evidence("hopper-h100").items[0]
    items = NvidiaGpuCollector(_fake_nvml(bytes.fromhex(hop["report"]), b"", cc=0)).collect(bytes(32))
    assert [i["kind"] for i in items] == ["nvidia-cc"] and items[0]["claims"]["cc_feature"] == "off"


def test_nvidia_collector_without_gpu_is_unavailable(no_gpu) -> None:
    with pytest.raises(UnavailableError) as info:
        NvidiaGpuCollector().collect(bytes(32))
    assert info.value.exit_code == 6
    with pytest.raises(UnavailableError):
        NvidiaGpuCollector(_fake_nvml(b"", b"", count=0)).collect(bytes(32))


def test_replay_and_plugins(tmp_path: Path) -> None:
    items = ReplayCollector(EVIDENCE / "hopper-h100.evidence.json").collect(bytes(32))
    assert items == evidence("hopper-h100").items
    names = plugins.available_collectors()
    assert {"software", "nvidia-gpu", "tsm", "replay"} <= set(names)
    assert isinstance(plugins.load_collector("tsm", root=tmp_path), TsmCollector)
    with pytest.raises(MissingDependencyError):
        plugins.load_collector("no-such-collector")
    with pytest.raises(UsageError):
        plugins.load_collector("replay")
    with pytest.raises(UsageError):
        collect([], nonce=bytes(32))


def test_pyproject_declares_builtin_collectors() -> None:
    import tomllib

    doc = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = doc["project"]["entry-points"]["qsafe.collectors"]
    assert declared == plugins.available_collectors() | declared and set(declared) == {"software", "nvidia-gpu", "tsm", "replay"}
