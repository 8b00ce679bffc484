"""One test per fuzzing crasher (tests/vectors/fuzz/HARNESS/FILE): the input now gets its specific qsafe error.

Each crasher also runs through its whole harness in test_fuzz.py; here the parser it broke is called directly
and the exact error class (hence exit code) is asserted.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from qsafe import model_evidence
from qsafe._attest.x509chain import load_der_or_pem, load_pem_chain
from qsafe._hashing.safetensors import read_header
from qsafe.attestation.appraisal import appraise
from qsafe.attestation.evidence import load_evidence
from qsafe.attestation.policy import load_policy
from qsafe.bundle import manifest_from_statement
from qsafe.certificates import load_certificates, parse_der_certificates
from qsafe.errors import FormatError, KeyFileError, UsageError

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "fuzz"
AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


def test_resource_digest_with_a_final_newline_is_a_format_error() -> None:
    # `^[0-9a-f]+$` matched "…\n" (63 hex digits and a newline, 64 characters): Manifest.root_digest then raised
    # ValueError from bytes.fromhex (exit 1). A signed statement is as hostile as its signer.
    statement = json.loads((VECTORS / "bundle" / "resource-digest-final-newline.statement.json").read_bytes())
    with pytest.raises(FormatError, match="hex digest"):
        manifest_from_statement(statement)


@pytest.mark.parametrize("field", ["header", "digest"])
def test_tensor_annotation_digests_with_a_final_newline_are_format_errors(field: str) -> None:
    statement = json.loads((Path(__file__).resolve().parents[2] / "fuzz" / "seeds" / "bundle" /
                            "ml-dsa-65.statement.json").read_bytes())
    resource = next(r for r in statement["predicate"]["resources"] if "annotations" in r)
    ann = resource["annotations"]["qsafe.safetensors.v1"]
    if field == "header":
        ann["header"] += "\n"
    else:
        ann["tensors"][0]["digest"] += "\n"
    with pytest.raises(FormatError):
        manifest_from_statement(statement)


def test_safetensors_dtype_with_a_final_newline_is_a_format_error() -> None:
    data = (VECTORS / "safetensors" / "dtype-final-newline.safetensors").read_bytes()
    with pytest.raises(FormatError, match="invalid dtype"):
        read_header(io.BytesIO(data), len(data))


def test_model_digest_with_a_final_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="model digest"):
        model_evidence.statement_for("sha256:" + "ab" * 32 + "\n", model_evidence.ROBUSTNESS_EVALUATION, {})


def test_certificate_with_a_malformed_extension_in_evidence_is_a_format_error() -> None:
    # The fuzzer changed bytes inside a certificate extension of the SEV-SNP chain. cryptography parses extensions
    # lazily, so the chain loaded and verify_chain's BasicConstraints lookup raised ValueError (exit 1).
    evidence = load_evidence(VECTORS / "evidence" / "snp-certificate-truncated-extension.evidence.json")
    policy = load_policy(ROOT / "attestations" / "policies" / "amd-sev-snp.json")
    with pytest.raises(FormatError, match="malformed certificate"):
        appraise(evidence, policy, at=AT)


def test_every_loader_parses_extensions_up_front() -> None:
    # The same damage as the crasher's, in the recorded AMD ASK: the BIT STRING inside its KeyUsage extension
    # (04 04 03 02 01 04) claims 0x35 bytes. The certificate itself still parses; only its extensions do not.
    chain = (ROOT / "attestations" / "evidence" / "recorded" / "go-sev-guest" / "milan.testcer").read_bytes()
    ask = load_der_or_pem(chain)[0].public_bytes(Encoding.DER)
    at = ask.index(bytes.fromhex("0603551d0f0101ff04040302")) + 8
    broken = ask[: at + 3] + b"\x35" + ask[at + 4 :]
    with pytest.raises(FormatError, match="malformed"):
        load_der_or_pem(broken)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(broken) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(FormatError, match="malformed"):
        load_pem_chain(pem)


def test_bundle_certificate_with_an_invalid_issuer_name_is_a_format_error(tmp_path: Path) -> None:
    # The certificates fuzzer changed one byte of the issuer Name of a certificate bundle's leaf. The DER loaded;
    # certificate_info's `cert.issuer` then raised ValueError (exit 1) for `qsafe verify` / `qsafe inspect`.
    der = (VECTORS / "certificates" / "leaf-issuer-name-invalid.der").read_bytes()
    with pytest.raises(FormatError, match="certificate 0 of the bundle's chain is malformed"):
        parse_der_certificates([der])
    pem = tmp_path / "root.pem"
    pem.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n")
    with pytest.raises(KeyFileError, match="malformed"):
        load_certificates([pem])


def test_certificate_with_an_unknown_version_is_refused_by_every_loader(tmp_path: Path) -> None:
    # cryptography raises x509.InvalidVersion, which is not a ValueError, for a version field other than v1-v3.
    der = (VECTORS / "certificates" / "version-18.der").read_bytes()
    with pytest.raises(FormatError, match="malformed"):
        parse_der_certificates([der])
    with pytest.raises(FormatError, match="malformed"):
        load_der_or_pem(der)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    with pytest.raises(FormatError, match="malformed"):
        load_pem_chain(pem)
    (tmp_path / "root.pem").write_bytes(pem)
    with pytest.raises(KeyFileError):
        load_certificates([tmp_path / "root.pem"])


def test_certificate_name_with_a_bitstring_attribute_is_a_format_error() -> None:
    # A Name attribute of BIT STRING type under another OID: cryptography raised TypeError building cert.subject.
    der = (VECTORS / "certificates" / "name-bitstring-wrong-oid.der").read_bytes()
    with pytest.raises(FormatError, match="malformed"):
        parse_der_certificates([der])
    with pytest.raises(FormatError, match="malformed"):
        load_der_or_pem(der)
