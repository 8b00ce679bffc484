"""Post-quantum X.509: `qsafe pki` makes an ML-DSA-87 CA and ML-DSA-65 signing certificates (RFC 9881),
`qsafe sign --certificate` writes certificate-chain bundles, `qsafe verify --certificate-chain` checks them.

The RFC 9881 encodings are checked independently: OIDs and absent parameters in the DER, and the certificate
signatures verified by dilithium-py (a second ML-DSA implementation) over the TBS bytes with the empty context.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dilithium_py.ml_dsa import ML_DSA_65, ML_DSA_87

import qsafe
from qsafe import keys, pki
from qsafe.certificates import verify_chain
from qsafe.errors import KeyFileError, ModelMismatchError, PolicyError, SignatureError, UsageError
from qsafe.policy import AllOf, CertificateIdentity, PostQuantum

from .helpers import make_model, write_keypair

PQ = PostQuantum()
ML_DSA_OIDS = {"ml-dsa-44": "2.16.840.1.101.3.4.3.17", "ml-dsa-65": "2.16.840.1.101.3.4.3.18",
               "ml-dsa-87": "2.16.840.1.101.3.4.3.19"}


@pytest.fixture(scope="module")
def ca() -> tuple[keys.PrivateKey, x509.Certificate]:
    key = keys.generate("ml-dsa-87")
    return key, pki.create_ca(key, "CN=qsafe test release CA,O=Example")


@pytest.fixture(scope="module")
def signer(ca: tuple[keys.PrivateKey, x509.Certificate]) -> tuple[keys.PrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    key = keys.generate("ml-dsa-65")
    cert = pki.issue_signing_certificate(ca_cert, ca_key, key.public_key(), "CN=release signer,O=Example",
                                         sans=["email:release@example.test", "uri:https://example.test/release"])
    return key, cert


def _der_algorithm_identifier(cert: x509.Certificate) -> bytes:
    """The outer signatureAlgorithm AlgorithmIdentifier of the certificate, as DER (after the TBS)."""
    der = cert.public_bytes(Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    start = der.index(tbs) + len(tbs)
    length = der[start + 1]
    return der[start:start + 2 + length]


def test_rfc9881_encodings(ca: tuple[keys.PrivateKey, x509.Certificate],
                           signer: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    ca_key, ca_cert = ca
    key, cert = signer
    assert ca_cert.signature_algorithm_oid.dotted_string == ML_DSA_OIDS["ml-dsa-87"]
    assert cert.signature_algorithm_oid.dotted_string == ML_DSA_OIDS["ml-dsa-87"]  # signed by the ML-DSA-87 CA
    oid = x509.ObjectIdentifier(ML_DSA_OIDS["ml-dsa-87"])
    encoded_oid = bytes([0x06, 9]) + bytes.fromhex("608648016503040313")
    assert oid.dotted_string and _der_algorithm_identifier(cert) == b"\x30\x0b" + encoded_oid  # no parameters
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki[4:17] == b"\x30\x0b\x06\x09" + bytes.fromhex("608648016503040312")  # id-ml-dsa-65, no params
    assert spki == key.public_key().to_der()
    # A second implementation verifies both certificate signatures: pure ML-DSA-87, empty context (RFC 9881).
    ca_pk = ca_key.public_key().to_der()[-2592:]
    assert ML_DSA_87.verify(ca_pk, cert.tbs_certificate_bytes, cert.signature, ctx=b"")
    assert ML_DSA_87.verify(ca_pk, ca_cert.tbs_certificate_bytes, ca_cert.signature, ctx=b"")
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_sign_and_verify_with_ml_dsa_certificate(tmp_path: Path, ca: tuple[keys.PrivateKey, x509.Certificate],
                                                  signer: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    _, ca_cert = ca
    key, cert = signer
    model = make_model(tmp_path / "model")
    qsafe.sign(model, key, certificates=[cert])
    doc = json.loads((model / "model.sig").read_text())
    chain = doc["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert base64.b64decode(chain[0]["rawBytes"]) == cert.public_bytes(Encoding.DER)
    result = qsafe.verify(model, model / "model.sig", policy=PQ, certificate_roots=[ca_cert])
    s = result.signers[0]
    assert (s.kind, s.algorithm, s.post_quantum) == ("certificate", "ml-dsa-65", True)
    assert s.certificate is not None and "email:release@example.test" in s.certificate.sans
    assert s.certificate.chain == ("CN=qsafe test release CA,O=Example",)
    # the DSSE signature is plain ML-DSA over PAE with the empty context, as Sigstore verifiers expect
    payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(payload), payload)
    sig = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    assert ML_DSA_65.verify(key.public_key().to_der()[-1952:], pae, sig, ctx=b"")
    policy = AllOf(PQ, CertificateIdentity(san="email:release@example.test"))
    qsafe.verify(model, model / "model.sig", policy=policy, certificate_roots=[ca_cert])
    with pytest.raises(PolicyError):
        qsafe.verify(model, model / "model.sig", certificate_roots=[ca_cert],
                     policy=AllOf(PQ, CertificateIdentity(subject="CN=someone else")))
    (model / "config.json").write_text("{}")
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, model / "model.sig", policy=PQ, certificate_roots=[ca_cert])


def test_intermediate_and_path_length(tmp_path: Path, ca: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    ca_key, ca_cert = ca
    int_key = keys.generate("ml-dsa-87")
    inter = pki.issue_ca_certificate(ca_cert, ca_key, int_key.public_key(), "CN=release intermediate",
                                     path_length=0)
    leaf_key = keys.generate("ml-dsa-65")
    leaf = pki.issue_signing_certificate(inter, int_key, leaf_key.public_key(), "CN=leaf")
    assert [c.subject.rfc4514_string() for c in verify_chain([leaf, inter], [ca_cert])][-1] == \
        ca_cert.subject.rfc4514_string()
    verify_chain([leaf, inter], [inter])  # a pinned intermediate is an anchor too
    with pytest.raises(SignatureError, match="does not lead"):
        verify_chain([leaf], [ca_cert])  # the intermediate is missing
    sub_key = keys.generate("ml-dsa-65")
    sub = pki.issue_ca_certificate(inter, int_key, sub_key.public_key(), "CN=too deep", path_length=None)
    deep_leaf = pki.issue_signing_certificate(sub, sub_key, keys.generate("ml-dsa-44").public_key(), "CN=deep")
    with pytest.raises(SignatureError, match="allows 0 intermediate"):
        verify_chain([deep_leaf, sub, inter], [ca_cert])
    with pytest.raises(SignatureError, match="not for code signing|neither keyUsage|may not sign"):
        verify_chain([inter], [ca_cert])  # a CA certificate is not a signing certificate


def test_validity_is_checked_at_the_verification_time(tmp_path: Path,
                                                      ca: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    ca_key, ca_cert = ca
    key = keys.generate("ml-dsa-65")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    old = pki.issue_signing_certificate(ca_cert, ca_key, key.public_key(), "CN=old signer", days=30,
                                        not_before=start)
    model = make_model(tmp_path / "model")
    qsafe.sign(model, key, certificates=[old])
    with pytest.raises(SignatureError, match="not valid at"):
        qsafe.verify(model, model / "model.sig", policy=PQ, certificate_roots=[ca_cert])
    with pytest.raises(SignatureError, match="not valid at"):  # the CA itself was not valid yet in 2025-01
        qsafe.verify(model, model / "model.sig", policy=PQ, certificate_roots=[ca_cert],
                     at=start + dt.timedelta(days=1))
    old_ca_key = keys.generate("ml-dsa-87")
    old_ca = pki.create_ca(old_ca_key, "CN=old CA", not_before=start)
    old_leaf = pki.issue_signing_certificate(old_ca, old_ca_key, key.public_key(), "CN=old signer", days=30,
                                             not_before=start)
    qsafe.sign(model, key, certificates=[old_leaf], signature=tmp_path / "old.sig")
    qsafe.verify(model, tmp_path / "old.sig", policy=PQ, certificate_roots=[old_ca], at=start + dt.timedelta(days=1))


def test_wrong_root_and_tampered_chain(tmp_path: Path, ca: tuple[keys.PrivateKey, x509.Certificate],
                                       signer: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    key, cert = signer
    model = make_model(tmp_path / "model")
    qsafe.sign(model, key, certificates=[cert])
    other_key = keys.generate("ml-dsa-87")
    other = pki.create_ca(other_key, "CN=qsafe test release CA,O=Example")  # same name, another key
    with pytest.raises(SignatureError, match="does not lead"):
        qsafe.verify(model, model / "model.sig", policy=PQ, certificate_roots=[other])
    doc = json.loads((model / "model.sig").read_text())
    forged = pki.issue_signing_certificate(other, other_key, keys.generate("ml-dsa-65").public_key(),
                                           "CN=release signer,O=Example")
    doc["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = base64.b64encode(
        forged.public_bytes(Encoding.DER)).decode()
    with pytest.raises(SignatureError):
        qsafe.verify(model, json.dumps(doc).encode(), policy=PQ, certificate_roots=[ca[1], other])


def test_certificate_must_match_the_key(tmp_path: Path, signer: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    _, cert = signer
    model = make_model(tmp_path / "model")
    with pytest.raises(KeyFileError, match="not for this key"):
        qsafe.sign(model, keys.generate("ml-dsa-65"), certificates=[cert])
    assert not (model / "model.sig").exists()
    with pytest.raises(KeyFileError, match="cannot be used in X.509"):
        pki.create_ca(keys.generate("ml-dsa-65-ed25519"), "CN=composite CA")


def test_pki_cli_round_trip(tmp_path: Path, cli: Any) -> None:
    r = cli(["pki", "init-ca", "--out", tmp_path / "ca", "--subject", "CN=Example Release CA,O=Example",
             "--no-passphrase", "--json"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["algorithm"] == "ml-dsa-87" and report["subject"] == "CN=Example Release CA,O=Example"
    assert cli(["keygen", "--alg", "ml-dsa-65", "--out", tmp_path / "release", "--no-passphrase"]).exit_code == 0
    r = cli(["pki", "issue", "--ca", tmp_path / "ca.pem", "--ca-key", tmp_path / "ca.key", "--public-key",
             tmp_path / "release.pub", "--subject", "CN=release signer", "--san", "email:release@example.test",
             "--out", tmp_path / "release.pem"])
    assert (r.exit_code, r.stderr) == (0, ""), r.stderr
    model = make_model(tmp_path / "model")
    r = cli(["sign", model, "--key", tmp_path / "release.key", "--certificate", tmp_path / "release.pem"])
    assert r.exit_code == 0, r.stderr
    r = cli(["verify", model, "--certificate-chain", tmp_path / "ca.pem"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli(["inspect", model / "model.sig"])
    assert "X.509 certificate chain; algorithm ml-dsa-65" in r.stdout and "SANs email:release@example.test" in r.stdout
    r = cli(["verify", model, "--certificate-chain", tmp_path / "ca.pem", "--at", "2020-01-01T00:00:00Z"])
    assert r.exit_code == 10 and "not valid at 2020-01-01" in r.stderr
    r = cli(["pki", "issue", "--ca", tmp_path / "ca.pem", "--ca-key", tmp_path / "ca.key", "--public-key",
             tmp_path / "release.pub", "--subject", "CN=x", "--out", tmp_path / "release.pem"])
    assert r.exit_code == 2 and "exists" in r.stderr
    r = cli(["pki", "issue", "--ca", tmp_path / "release.pem", "--ca-key", tmp_path / "release.key",
             "--public-key", tmp_path / "ca.pub", "--subject", "CN=x", "--out", tmp_path / "x.pem"])
    assert r.exit_code == 2 and "not a CA" in r.stderr
    r = cli(["pki", "init-ca", "--out", tmp_path / "bad", "--subject", "not a name", "--no-passphrase"])
    assert r.exit_code == 2 and "RFC 4514" in r.stderr
    r = cli(["sign", model, "--certificate", tmp_path / "release.pem"])
    assert r.exit_code == 2


def test_pki_intermediate_cli(tmp_path: Path, cli: Any) -> None:
    for args in (["pki", "init-ca", "--out", tmp_path / "root", "--subject", "CN=Root", "--no-passphrase"],
                 ["keygen", "--alg", "ml-dsa-87", "--out", tmp_path / "int", "--no-passphrase"],
                 ["keygen", "--alg", "ml-dsa-65", "--out", tmp_path / "rel", "--no-passphrase"]):
        assert cli(args).exit_code == 0
    r = cli(["pki", "issue", "--ca", tmp_path / "root.pem", "--ca-key", tmp_path / "root.key", "--public-key",
             tmp_path / "int.pub", "--subject", "CN=Intermediate", "--intermediate", "--out", tmp_path / "int.pem"])
    assert r.exit_code == 0, r.stderr
    r = cli(["pki", "issue", "--ca", tmp_path / "int.pem", "--ca-key", tmp_path / "int.key", "--public-key",
             tmp_path / "rel.pub", "--subject", "CN=Release", "--out", tmp_path / "rel.pem"])
    assert r.exit_code == 0, r.stderr
    model = make_model(tmp_path / "model")
    r = cli(["sign", model, "--key", tmp_path / "rel.key", "--certificate", tmp_path / "rel.pem",
             "--certificate-chain", tmp_path / "int.pem"])
    assert r.exit_code == 0, r.stderr
    assert cli(["verify", model, "--certificate-chain", tmp_path / "root.pem"]).exit_code == 0
    r = cli(["verify", model, "--certificate-chain", tmp_path / "rel.pem"])
    assert r.exit_code == 10


def test_legacy_qsafe_context_still_verifies(tmp_path: Path) -> None:
    """Bundles qsafe 0.1 signed with the 'qsafe/v1 model-bundle dsse' context keep verifying."""
    from qsafe._labels import DSSE_PAYLOAD_TYPE, MLDSA_CONTEXT_MODEL_BUNDLE
    from qsafe.bundle import build_bundle, pae, statement_bytes
    from qsafe.manifest import hash_model

    key = keys.generate("ml-dsa-65")
    model = make_model(tmp_path / "model")
    payload = statement_bytes(hash_model(model))
    public = key.public_key()
    data = build_bundle(payload, key.sign(pae(DSSE_PAYLOAD_TYPE, payload), MLDSA_CONTEXT_MODEL_BUNDLE),
                        hint=public.model_signing_hint, details=public.key_details, keyid=public.key_id)
    assert qsafe.verify(model, data, public, policy=PQ).algorithm == "ml-dsa-65"
    data = build_bundle(payload, key.sign(pae(DSSE_PAYLOAD_TYPE, payload), b"another context"),
                        hint=public.model_signing_hint, details=public.key_details, keyid=public.key_id)
    with pytest.raises(SignatureError):
        qsafe.verify(model, data, public, policy=PQ)


def test_policy_composition_rules() -> None:
    from qsafe.policy import AnyOf

    with pytest.raises(UsageError):
        AllOf()
    with pytest.raises(UsageError):
        AnyOf()
    with pytest.raises(UsageError):
        CertificateIdentity()


def test_pki_writes_keys_protected_by_default(tmp_path: Path, cli: Any) -> None:
    r = cli(["pki", "init-ca", "--out", tmp_path / "ca", "--subject", "CN=CA"],
            env={"QSAFE_PASSPHRASE": "correct horse", "QSAFE_SCRYPT_WORK_FACTOR": "10"})
    assert r.exit_code == 0, r.stderr
    assert keys.is_protected_key_file(tmp_path / "ca.key")
    _, pub = write_keypair(keys.generate("ml-dsa-65"), tmp_path / "rel")
    r = cli(["pki", "issue", "--ca", tmp_path / "ca.pem", "--ca-key", tmp_path / "ca.key", "--public-key", pub,
             "--subject", "CN=rel", "--out", tmp_path / "rel.pem"], env={"QSAFE_PASSPHRASE": "wrong"})
    assert r.exit_code == 4


def test_cli_refuses_bad_trust_inputs(tmp_path: Path, cli: Any, ca: tuple[keys.PrivateKey, x509.Certificate],
                                      signer: tuple[keys.PrivateKey, x509.Certificate]) -> None:
    key, cert = signer
    model = make_model(tmp_path / "model")
    qsafe.sign(model, key, certificates=[cert])
    (tmp_path / "not-pem.pem").write_text("hello\n")
    r = cli(["verify", model, "--certificate-chain", tmp_path / "not-pem.pem"])
    assert r.exit_code == 4 and "no PEM certificate" in r.stderr
    r = cli(["verify", model, "--certificate-chain", tmp_path / "not-pem.pem", "--require", "quantum"])
    assert r.exit_code == 2 and "unknown requirement" in r.stderr
    _, pub = write_keypair(key, tmp_path / "k")
    r = cli(["verify", model, "--key", pub])  # a certificate bundle needs its trust anchor, not the key
    assert r.exit_code == 2 and "--certificate-chain" in r.stderr
    r = cli(["verify", model, "--certificate-chain", tmp_path / "not-pem.pem", "--at", "yesterday"])
    assert r.exit_code == 2 and "--at" in r.stderr
    r = cli(["sign", model, "--sigstore", "--certificate", tmp_path / "x.pem"])
    assert r.exit_code == 2
