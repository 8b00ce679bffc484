"""AMD SEV-SNP attestation reports (SEV-SNP ABI spec 56860, ATTESTATION_REPORT, versions 2-3+).

The signature is ECDSA P-384 / SHA-384 over bytes 0x000..0x29F; r and s are 72-byte little-endian integers at
0x2A0 and 0x2E8. The signing key is the VCEK (chip-unique) or VLEK (cloud-provider loaded), chosen by bits 2-4
of the key-info word at 0x48; its certificate chains to the pinned AMD root (ARK) through the ASK / ASVK.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from qsafe._attest import EvidenceCheckError
from qsafe._attest.x509chain import ChainError, verify_chain
from qsafe.errors import FormatError

__all__ = ["REPORT_LEN", "SnpReport", "parse_report", "verify_report"]

REPORT_LEN = 0x4A0
SIGNED_LEN = 0x2A0
_TCB_OIDS = {"bootloader": "1.3.6.1.4.1.3704.1.3.1", "tee": "1.3.6.1.4.1.3704.1.3.2",
             "snp": "1.3.6.1.4.1.3704.1.3.3", "microcode": "1.3.6.1.4.1.3704.1.3.8"}
_HWID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.4")


@dataclass(frozen=True)
class SnpReport:
    raw: bytes
    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signature_algo: int
    key_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    reported_tcb: int
    chip_id: bytes

    @property
    def signing_key(self) -> str:
        return {0: "vcek", 1: "vlek"}.get((self.key_info >> 2) & 7, "none")

    def tcb_parts(self) -> dict[str, int]:
        """Reported TCB as SVNs (Milan/Genoa layout: bootloader, tee, reserved, snp, microcode)."""
        b = self.reported_tcb.to_bytes(8, "little")
        return {"bootloader": b[0], "tee": b[1], "snp": b[6], "microcode": b[7]}


def parse_report(raw: bytes) -> SnpReport:
    """Parse a 1184-byte SEV-SNP report.

    Raises:
        FormatError: wrong length or unsupported version / signature algorithm.
    """
    if len(raw) != REPORT_LEN:
        raise FormatError(f"SEV-SNP report must be {REPORT_LEN} bytes, got {len(raw)}")
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0)
    vmpl, algo, _tcb, _pinfo, key_info = struct.unpack_from("<IIQQI", raw, 0x30)
    if version < 2:
        raise FormatError(f"unsupported SEV-SNP report version {version}")
    if algo != 1:
        raise FormatError(f"unsupported SEV-SNP signature algorithm {algo} (1 = ECDSA P-384/SHA-384)")
    return SnpReport(
        raw=raw, version=version, guest_svn=guest_svn, policy=policy, vmpl=vmpl, signature_algo=algo,
        key_info=key_info, report_data=raw[0x50:0x90], measurement=raw[0x90:0xC0], host_data=raw[0xC0:0xE0],
        reported_tcb=struct.unpack_from("<Q", raw, 0x180)[0], chip_id=raw[0x1A0:0x1E0],
    )


def _cert_int(cert: x509.Certificate, oid: str) -> int | None:
    try:
        value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    except x509.ExtensionNotFound:
        return None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    # DER INTEGER: 02 len bytes...
    return int.from_bytes(raw[2:], "big") if len(raw) >= 3 and raw[0] == 2 else None


def _check_tcb_binding(report: SnpReport, cert: x509.Certificate) -> None:
    for name, svn in report.tcb_parts().items():
        cert_svn = _cert_int(cert, _TCB_OIDS[name])
        if cert_svn is not None and cert_svn != svn:
            raise EvidenceCheckError("tcb", f"reported TCB {name} SVN {svn} differs from the VCEK's {cert_svn}")
    if report.signing_key == "vcek":
        try:
            hwid = cert.extensions.get_extension_for_oid(_HWID_OID).value
        except x509.ExtensionNotFound:
            return
        raw = hwid.value if isinstance(hwid, x509.UnrecognizedExtension) else b""
        if raw and raw[-64:] != report.chip_id and any(report.chip_id):
            raise EvidenceCheckError("chip_id", "report CHIP_ID differs from the VCEK's hwID")


def verify_report(
    report: SnpReport,
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: dt.datetime,
    expected_report_data: bytes | None,
) -> None:
    """Verify the VCEK/VLEK chain to a pinned ARK, the report signature, the TCB binding and the report data.

    Raises:
        EvidenceCheckError: ``check`` is cert_chain, signature, tcb, chip_id or report_data.
    """
    try:
        verify_chain(chain, roots, at)
    except ChainError as exc:
        raise EvidenceCheckError("cert_chain", str(exc)) from exc
    public = chain[0].public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise EvidenceCheckError("signature", "VCEK/VLEK is not an EC key")
    sig = report.raw[SIGNED_LEN:]
    r = int.from_bytes(sig[:72], "little")
    s = int.from_bytes(sig[72:144], "little")
    try:
        public.verify(utils.encode_dss_signature(r, s), report.raw[:SIGNED_LEN], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise EvidenceCheckError("signature", f"SEV-SNP report signature does not verify with the {report.signing_key.upper()}") from exc
    _check_tcb_binding(report, chain[0])
    if expected_report_data is not None and report.report_data != expected_report_data:
        raise EvidenceCheckError("report_data", "SEV-SNP REPORT_DATA is not the expected binding")


def report_claims(report: SnpReport) -> dict[str, object]:
    """Claims of a (verified) report."""
    return {
        "version": report.version, "guest_svn": report.guest_svn, "vmpl": report.vmpl,
        "policy.debug": bool(report.policy >> 19 & 1), "policy.migrate_ma": bool(report.policy >> 18 & 1),
        "policy.smt": bool(report.policy >> 16 & 1), "signing_key": report.signing_key,
        "measurement": report.measurement.hex(), "host_data": report.host_data.hex(),
        "report_data": report.report_data.hex(), "chip_id": report.chip_id.hex(),
        **{f"reported_tcb.{k}": v for k, v in report.tcb_parts().items()},
    }
