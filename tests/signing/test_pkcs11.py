"""model-signing's PKCS#11 signers (`sign pkcs11-key`, `sign pkcs11-certificate`) against a SoftHSM token.

The key never leaves the token: model-signing signs through PKCS#11 (PyKCS11 + SoftHSM 2, both installed by
`make peers` / the dev extra), and qsafe verifies the bundles with the exported public key or the CA chain.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import qsafe
from qsafe.errors import ModelMismatchError
from qsafe.policy import VerificationPolicy

from .helpers import make_model

pytestmark = pytest.mark.slow
PyKCS11 = pytest.importorskip("PyKCS11")
pytest.importorskip("model_signing")
MODULE = next((p for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
               if os.path.exists(p)), None)
CLASSICAL = VerificationPolicy(allow_classical=True)
P256 = bytes.fromhex("06082a8648ce3d030107")  # DER OID prime256v1, CKA_EC_PARAMS


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh SoftHSM token holding an EC P-256 key pair made inside the token; the exported public key."""
    if MODULE is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM 2 is not installed (make peers installs it)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "qsafe", "--pin", "1234", "--so-pin",
                    "5678"], check=True, capture_output=True, env=env)
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # PyKCS11 loads the module in this process
    try:
        lib = PyKCS11.PyKCS11Lib()
        lib.load(MODULE)
        slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == "qsafe")
        session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
        session.login("1234")
        common = [(PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC), (PyKCS11.CKA_TOKEN, True),
                  (PyKCS11.CKA_LABEL, "release"), (PyKCS11.CKA_ID, (1,))]
        public, _ = session.generateKeyPair(
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_EC_PARAMS, P256),
             *common],
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_PRIVATE, True),
             (PyKCS11.CKA_SENSITIVE, True), *common],
            mecha=PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None))
        point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT])[0])
        session.logout()
        session.closeSession()
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])  # unwrap the OCTET STRING
    pub = base / "token.pub"
    pub.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    uri = f"pkcs11:token=qsafe;object=release?module-path={MODULE}&pin-value=1234"
    return {"env": env, "uri": uri, "pub": pub, "key": key, "base": base}


def _ms(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_signing", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _chain_for(key: ec.EllipticCurvePublicKey, base: Path) -> tuple[Path, Path]:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM test root")])
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA384()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM key")]))
            .issuer_name(name).public_key(key).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .sign(root_key, hashes.SHA384()))
    paths = base / "hsm-root.pem", base / "hsm-leaf.pem"
    for path, cert in zip(paths, (root, leaf)):
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return paths


def test_pkcs11_key_bundle(tmp_path: Path, token: dict[str, Any]) -> None:
    model = make_model(tmp_path / "model")
    r = _ms(token["env"], "sign", "pkcs11-key", model, "--pkcs11_uri", token["uri"], "--signature", tmp_path / "k.sig")
    assert r.returncode == 0, r.stdout + r.stderr
    result = qsafe.verify(model, tmp_path / "k.sig", token["pub"], policy=CLASSICAL)
    assert result.algorithm == "ecdsa-p256"
    (model / "config.json").write_text("{}")
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, tmp_path / "k.sig", token["pub"], policy=CLASSICAL)


def test_pkcs11_certificate_bundle(tmp_path: Path, token: dict[str, Any]) -> None:
    root, leaf = _chain_for(token["key"], tmp_path)
    model = make_model(tmp_path / "model")
    r = _ms(token["env"], "sign", "pkcs11-certificate", model, "--pkcs11_uri", token["uri"], "--signing_certificate",
            leaf, "--certificate_chain", root, "--signature", tmp_path / "c.sig")
    out = r.stdout + r.stderr
    if r.returncode != 0 and "validation error for" in out and ("VerificationMaterial" in out
                                                               or "X509Certificate" in out):
        # model-signing 1.1.1's own bugs: its PKCS#11 certificate signer hands sigstore-models raw DER where
        # base64 is expected (refused unless the DER happens to parse as base64) and builds a VerificationMaterial
        # without tlogEntries (always refused), so it writes no bundle. Its bundles would have the
        # x509CertificateChain shape that `sign certificate` writes (verified in test_generations.py).
        pytest.xfail("model-signing 1.1.1 cannot write pkcs11-certificate bundles (sigstore-models validation)")
    assert r.returncode == 0, r.stdout + r.stderr
    result = qsafe.verify(model, tmp_path / "c.sig", certificate_roots=[root], policy=CLASSICAL)
    assert result.signers[0].kind == "certificate" and result.signers[0].certificate is not None
    (model / "tokenizer" / "vocab.txt").write_text("z\n")
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, tmp_path / "c.sig", certificate_roots=[root], policy=CLASSICAL)
