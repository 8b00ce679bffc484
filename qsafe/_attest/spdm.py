"""NVIDIA GPU attestation reports: SPDM 1.1 GET_MEASUREMENTS request || MEASUREMENTS response.

Layout (DMTF DSP0274 1.1 + NVIDIA's opaque-data TLVs). The report is parsed strictly by the lengths it declares;
anything after the 96-byte signature (one real report carries a trailing byte) is outside the signed range and
ignored, never treated as part of the signature. The signature is ECDSA P-384 / SHA-384, raw r||s, over
request || response up to (not including) the signature.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from qsafe._attest import EvidenceCheckError
from qsafe._attest.x509chain import ChainError, verify_chain
from qsafe.errors import FormatError

__all__ = ["SpdmReport", "parse_report", "verify_report"]

REQUEST_LEN = 37  # version, code, param1, param2, 32-byte nonce, slot id
SIGNATURE_LEN = 96  # P-384 r||s
SPDM_GET_MEASUREMENTS = 0xE0
SPDM_MEASUREMENTS = 0x60
# TCG DICE TcbInfo (Hopper) and its successor OID (Blackwell); both hold an FWID list of (hashAlg, digest).
FWID_OIDS = (x509.ObjectIdentifier("2.23.133.5.4.1"), x509.ObjectIdentifier("2.23.133.5.4.1.1"))
# DER of OID sha384 (2.16.840.1.101.3.4.2.2) followed by an OCTET STRING of 48 bytes: one SHA-384 FWID.
_SHA384_FWID = bytes.fromhex("0609608648016503040202") + b"\x04\x30"

# NVIDIA opaque-data field ids we turn into claims (others are kept by id).
_OPAQUE_NAMES = {
    3: "driver_version", 4: "gpu_info", 6: "vbios_version", 11: "nvdec0_status",
    15: "chip_sku", 16: "chip_sku_mod", 17: "project", 18: "project_sku", 19: "project_sku_mod",
    20: "fwid", 21: "protected_pcie_status", 34: "opaque_data_version",
}


@dataclass(frozen=True)
class SpdmReport:
    """A parsed report. ``signed`` is exactly the byte range the signature covers."""

    request_nonce: bytes
    responder_nonce: bytes
    measurements: dict[int, bytes]
    opaque: dict[int, bytes]
    signed: bytes
    signature: bytes
    trailing: int
    spdm_version: int = 0x11
    extra: dict[str, str] = field(default_factory=dict)

    def opaque_text(self, field_id: int) -> str | None:
        value = self.opaque.get(field_id)
        return None if value is None else value.split(b"\x00", 1)[0].decode("ascii", "replace")

    def vbios_version(self) -> str | None:
        value = self.opaque.get(6)
        if value is None or len(value) < 5:
            return None
        # NVIDIA's rendering of the 8-byte field: bytes 3.2.1.0.4 in hex (e.g. 96.00.9F.00.01).
        return ".".join(f"{value[i]:02X}" for i in (3, 2, 1, 0, 4))


def _take(data: bytes, offset: int, length: int, what: str) -> bytes:
    if length < 0 or offset + length > len(data):
        raise FormatError(f"GPU report truncated: {what} needs {length} bytes at offset {offset}, have {len(data)}")
    return data[offset : offset + length]


def _parse_tlv(data: bytes, what: str, header: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        fid, size = struct.unpack_from(header, _take(data, offset, struct.calcsize(header), what))
        offset += struct.calcsize(header)
        out[fid] = _take(data, offset, size, f"{what} field {fid}")
        offset += size
    return out


def _parse_measurements(record: bytes, count: int) -> dict[int, bytes]:
    blocks: dict[int, bytes] = {}
    offset, end = 0, len(record)
    for _ in range(count):
        # Block: index (1), spec (1), size (2); DMTF measurement inside: type (1), value size (2), value.
        if offset + 7 > end:
            raise FormatError(f"GPU report truncated: measurement block header at offset {offset}")
        index, _spec, size, _mtype, vsize = struct.unpack_from("<BBHBH", record, offset)
        if vsize + 3 > size or offset + 4 + size > end:
            raise FormatError(f"GPU report: measurement block {index} runs past its declared length")
        blocks[index] = record[offset + 7 : offset + 7 + vsize]
        offset += 4 + size
    if offset != end:
        raise FormatError(f"GPU report measurement record has {end - offset} unexplained bytes")
    return blocks


def parse_report(raw: bytes) -> SpdmReport:
    """Parse a GET_MEASUREMENTS request || response by the lengths the messages declare.

    Raises:
        FormatError: wrong message codes, or a declared length runs past the data.
    """
    request = _take(raw, 0, REQUEST_LEN, "SPDM request")
    if request[1] != SPDM_GET_MEASUREMENTS:
        raise FormatError(f"not an SPDM GET_MEASUREMENTS request (code 0x{request[1]:02x})")
    resp = raw[REQUEST_LEN:]
    head = _take(resp, 0, 8, "SPDM response header")
    if head[1] != SPDM_MEASUREMENTS:
        raise FormatError(f"not an SPDM MEASUREMENTS response (code 0x{head[1]:02x})")
    count = head[4]
    record_len = int.from_bytes(head[5:8], "little")
    offset = 8
    record = _take(resp, offset, record_len, "measurement record")
    offset += record_len
    responder_nonce = _take(resp, offset, 32, "responder nonce")
    offset += 32
    opaque_len = struct.unpack("<H", _take(resp, offset, 2, "opaque length"))[0]
    offset += 2
    opaque = _take(resp, offset, opaque_len, "opaque data")
    offset += opaque_len
    signature = _take(resp, offset, SIGNATURE_LEN, "signature")
    end = REQUEST_LEN + offset
    return SpdmReport(
        request_nonce=request[4:36], responder_nonce=responder_nonce,
        measurements=_parse_measurements(record, count), opaque=_parse_tlv(opaque, "opaque data", "<HH"),
        signed=raw[:end], signature=signature, trailing=len(raw) - end - SIGNATURE_LEN, spdm_version=request[0],
    )


def _leaf_fwid(leaf: x509.Certificate) -> bytes | None:
    for oid in FWID_OIDS:
        try:
            ext = leaf.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
        at = value.find(_SHA384_FWID)
        if at >= 0 and at + len(_SHA384_FWID) + 48 <= len(value):
            start = at + len(_SHA384_FWID)
            return bytes(value[start : start + 48])
    return None


def verify_report(
    report: SpdmReport,
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: dt.datetime,
    expected_nonce: bytes | None,
) -> None:
    """Verify chain, signature, FWID and (when given) the nonce of one GPU report.

    Raises:
        EvidenceCheckError: ``check`` is one of cert_chain, signature, fwid, nonce.
    """
    try:
        verify_chain(chain, roots, at)
    except ChainError as exc:
        raise EvidenceCheckError("cert_chain", str(exc)) from exc
    public = chain[0].public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise EvidenceCheckError("signature", "GPU attestation key is not ECDSA P-384")
    r = int.from_bytes(report.signature[:48], "big")
    s = int.from_bytes(report.signature[48:], "big")
    try:
        public.verify(utils.encode_dss_signature(r, s), report.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise EvidenceCheckError("signature", "GPU report signature does not verify with the device key") from exc
    report_fwid, cert_fwid = report.opaque.get(20), _leaf_fwid(chain[0])
    if report_fwid is not None and report_fwid != cert_fwid:
        raise EvidenceCheckError("fwid", "FWID in the report differs from the FWID in the device certificate")
    if expected_nonce is not None and report.request_nonce != expected_nonce:
        raise EvidenceCheckError(
            "nonce", f"GPU report nonce {report.request_nonce.hex()} is not the expected {expected_nonce.hex()}"
        )


def report_claims(report: SpdmReport) -> dict[str, object]:
    """Claims from a (verified) report: driver, VBIOS, project/SKU strings, FWID, measurements."""
    claims: dict[str, object] = {"spdm_version": f"{report.spdm_version >> 4}.{report.spdm_version & 15}"}
    for fid, name in _OPAQUE_NAMES.items():
        if fid in (4, 6, 11, 12, 20, 21, 34):
            continue
        text = report.opaque_text(fid)
        if text is not None:
            claims[name] = text
    claims["vbios_version"] = report.vbios_version()
    if 20 in report.opaque:
        claims["fwid"] = report.opaque[20].hex()
    claims["nonce"] = report.request_nonce.hex()
    claims["measurement_count"] = len(report.measurements)
    claims["measurements"] = {str(i): v.hex() for i, v in sorted(report.measurements.items())}
    return {k: v for k, v in claims.items() if v is not None}
