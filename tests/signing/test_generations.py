"""Every model-signing bundle generation verifies with qsafe, and fails after tampering.

Sources (provenance in tests/vectors/model-signing/PROVENANCE.md and tests/vectors/oms-vectors/PROVENANCE.md):

- model-signing 1.1.1, live: its Python API with every serialization method, hash type and several shard sizes,
  key and certificate signers, single-file models and ignore paths; and its CLI (``sign key``, ``sign
  certificate``).
- model-signing 0.3.1, 1.0.0, 1.0.1, 1.1.0: bundles generated once with each release in its own virtual
  environment (tests/vectors/model-signing/generated/, with the generator and the exact calls in cases.json).
- model-signing's own published fixtures (v0.2.0-certificate ... v1.1.0-elliptic-key; the keyless ones are in
  test_keyless.py), and the OMS specification's test vectors (valid and invalid).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import qsafe
from qsafe.bundle import parse_bundle
from qsafe.errors import FormatError, ModelMismatchError, SignatureError
from qsafe.policy import VerificationPolicy

from .helpers import make_model

pytest.importorskip("model_signing")
pytest.importorskip("OpenSSL")  # model-signing's certificate path needs pyOpenSSL (undeclared dependency)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
GENERATED = VECTORS / "model-signing" / "generated"
UPSTREAM = VECTORS / "model-signing" / "upstream"
OMS = VECTORS / "oms-vectors" / "v1.0"
INPUTS = GENERATED / "inputs"
CLASSICAL = VerificationPolicy(allow_classical=True)


def _tamper(model: Path) -> str:
    """Flip one byte of the first non-empty signed file; return its resource name."""
    if model.is_file():
        target, name = model, "."
    else:
        target = next(p for p in sorted(model.rglob("*")) if p.is_file() and p.stat().st_size and
                      p.name not in ("model.sig", "ignore-me", "notes.txt") and "ignored-dir" not in p.parts)
        name = target.relative_to(model).as_posix()
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    return name


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return dst


# --- model-signing 1.1.1, live --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ECDSA key pair and a root -> intermediate -> code-signing leaf chain, as model-signing users have."""
    import datetime as dt

    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    base = tmp_path_factory.mktemp("pki")
    out: dict[str, Path] = {}

    def write_key(key: ec.EllipticCurvePrivateKey, name: str) -> None:
        out[name + ".key"] = base / f"{name}.key"
        out[name + ".key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        out[name + ".pub"] = base / f"{name}.pub"
        out[name + ".pub"].write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                     serialization.PublicFormat.SubjectPublicKeyInfo))

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)

    def cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
             ca: bool) -> None:
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
        else:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        out[name + ".pem"] = base / f"{name}.pem"
        out[name + ".pem"].write_bytes(b.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    write_key(ec.generate_private_key(ec.SECP256R1()), "ec")
    write_key(leaf_key, "leaf")
    cert("root", root_key, "root", root_key, True)
    cert("int", int_key, "root", root_key, True)
    cert("leaf", leaf_key, "int", int_key, False)
    return out


def _ms_sign(model: Path, sig: Path, pki: dict[str, Path], *, method: str, alg: str, shard: int = 1000,
             signer: str = "key", ignore: tuple[str, ...] = ()) -> None:
    import model_signing

    hc = model_signing.hashing.Config()
    if method == "files":
        hc.use_file_serialization(hashing_algorithm=alg)  # type: ignore[arg-type]
    else:
        hc.use_shard_serialization(hashing_algorithm=alg, shard_size=shard)  # type: ignore[arg-type]
    hc.set_ignored_paths(paths=list(ignore), ignore_git_paths=True)
    cfg = model_signing.signing.Config().set_hashing_config(hc)
    if signer == "key":
        cfg.use_elliptic_key_signer(private_key=pki["ec.key"])
    else:
        cfg.use_certificate_signer(private_key=pki["leaf.key"], signing_certificate=pki["leaf.pem"],
                                   certificate_chain=[pki["int.pem"]])
    cfg.sign(model, sig)


def _trust(pki: dict[str, Path], signer: str) -> dict[str, Any]:
    return {"keys": pki["ec.pub"]} if signer == "key" else {"certificate_roots": [pki["root.pem"]]}


@pytest.mark.parametrize("method,alg,shard", [
    ("files", "sha256", 0), ("files", "blake2", 0), ("files", "blake3", 0),
    ("shards", "sha256", 1000), ("shards", "blake2", 1000), ("shards", "blake3", 1000),
    ("shards", "sha256", 333), ("shards", "sha256", 1 << 20),
])
@pytest.mark.parametrize("signer", ["key", "certificate"])
def test_model_signing_api_bundles_verify(tmp_path: Path, pki: dict[str, Path], method: str, alg: str, shard: int,
                                          signer: str) -> None:
    model = make_model(tmp_path / "model")
    (model / "notes.txt").write_text("not signed\n")
    sig = tmp_path / "model.sig"
    _ms_sign(model, sig, pki, method=method, alg=alg, shard=shard, signer=signer, ignore=("notes.txt",))
    statement = json.loads(parse_bundle(sig.read_bytes()).payload)
    if method == "shards" and alg != "blake3":
        assert isinstance(statement["predicate"]["serialization"]["shard_size"], float)  # written as 1000.0
    result = qsafe.verify(model, sig, policy=CLASSICAL, **_trust(pki, signer))
    assert result.signers[0].kind == ("key" if signer == "key" else "certificate")
    assert "notes.txt" not in result.manifest.files()
    changed = _tamper(model)
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model, sig, policy=CLASSICAL, **_trust(pki, signer))
    assert exc.value.changed == [changed]


@pytest.mark.parametrize("method", ["files", "shards"])
def test_model_signing_single_file_model(tmp_path: Path, pki: dict[str, Path], method: str) -> None:
    model = make_model(tmp_path / "model") / "model.safetensors"
    sig = tmp_path / "file.sig"
    _ms_sign(model, sig, pki, method=method, alg="sha256", shard=512)
    names = [r.name for r in qsafe.verify(model, sig, pki["ec.pub"], policy=CLASSICAL).manifest.resources]
    assert names[0] == "." if method == "files" else names[0].startswith(".:0:")
    _tamper(model)
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model, sig, pki["ec.pub"], policy=CLASSICAL)
    assert exc.value.changed == ["."]


def _run_ms(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_signing", *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300)


def test_model_signing_cli_key_and_certificate(tmp_path: Path, pki: dict[str, Path], cli: Any) -> None:
    model = make_model(tmp_path / "model")
    (model / "ignore-me").write_text("x")
    r = _run_ms("sign", "certificate", model, "--private_key", pki["leaf.key"], "--signing_certificate",
                pki["leaf.pem"], "--certificate_chain", pki["int.pem"], "--signature", tmp_path / "cert.sig",
                "--ignore-paths", model / "ignore-me")
    assert r.returncode == 0, r.stderr
    r = _run_ms("sign", "key", model, "--private_key", pki["ec.key"], "--signature", model / "model.sig",
                "--ignore-paths", model / "ignore-me")
    assert r.returncode == 0, r.stderr
    c = cli(["verify", model, "--key", pki["ec.pub"], "--allow-classical"])
    assert (c.exit_code, c.stderr) == (0, "")
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--certificate-chain", pki["root.pem"],
             "--allow-classical", "--ignore-path", "model.sig"])
    assert (c.exit_code, c.stderr) == (0, "")
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--certificate-chain", pki["int.pem"],
             "--allow-classical", "--ignore-path", "model.sig"])
    assert c.exit_code == 0, c.stderr  # a pinned intermediate is a trust anchor too
    _tamper(model)
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--certificate-chain", pki["root.pem"],
             "--allow-classical", "--ignore-path", "model.sig"])
    assert c.exit_code == 12 and "changed: " in c.stderr


def test_certificate_bundle_needs_its_root(tmp_path: Path, pki: dict[str, Path], cli: Any) -> None:
    model = make_model(tmp_path / "model")
    _ms_sign(model, tmp_path / "cert.sig", pki, method="files", alg="sha256", signer="certificate")
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--certificate-chain", pki["leaf.pem"],
             "--allow-classical"])
    assert c.exit_code == 10 and "does not lead to any of the 1 trusted" in c.stderr
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--key", pki["ec.pub"], "--allow-classical"])
    assert c.exit_code == 2 and "--certificate-chain" in c.stderr
    c = cli(["verify", model, "--signature", tmp_path / "cert.sig", "--certificate-chain", pki["root.pem"]])
    assert c.exit_code == 11 and "classical-only" in c.stderr


# --- stored generations (0.3.1, 1.0.0, 1.0.1, 1.1.0) ----------------------------------------------------------
def _generation_cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for cases in sorted(GENERATED.glob("*/cases.json")):
        doc = json.loads(cases.read_text())
        out += [(doc["model_signing"], case) for case in doc["cases"]]
    return out


@pytest.mark.parametrize("version,case", _generation_cases(), ids=lambda v: v if isinstance(v, str) else v["bundle"])
def test_stored_generation_verifies_and_detects_tampering(tmp_path: Path, version: str, case: dict[str, Any]) -> None:
    model = _copy(INPUTS / case["model"], tmp_path / case["model"])
    sig = GENERATED / version / case["bundle"]
    trust: dict[str, Any] = ({"keys": INPUTS / f"{case['signer'][4:]}.pub"} if case["signer"].startswith("key-")
                             else {"certificate_roots": [INPUTS / "root-ca.pem"]})
    result = qsafe.verify(model, sig, policy=CLASSICAL, ignore_paths=case["ignore_paths"], **trust)
    assert result.manifest.serialization.method == case["method"]
    assert result.manifest.serialization.hash_type == ("blake2b" if case["hash"] == "blake2" else case["hash"])
    changed = _tamper(model)
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model, sig, policy=CLASSICAL, ignore_paths=case["ignore_paths"], **trust)
    assert exc.value.changed == [changed]


def test_generations_cover_every_version_and_shape() -> None:
    versions = {v for v, _ in _generation_cases()}
    assert {"0.3.1", "1.0.0", "1.0.1", "1.1.0"} <= versions
    shapes = {(c["method"], c["hash"], c["signer"].split("-")[0]) for _, c in _generation_cases()}
    assert {("files", "sha256", "key"), ("shards", "blake2", "key"), ("files", "sha256", "certificate"),
            ("shards", "blake2", "certificate")} <= shapes
    raw_keys = [v for v, c in _generation_cases() if c["signer"].startswith("key-") and
                parse_bundle((GENERATED / v / c["bundle"]).read_bytes()).raw_public_key is not None]
    assert {"0.3.1", "1.0.0", "1.0.1"} <= set(raw_keys)  # the rawBytes generation


# --- rawBytes: checked against the trusted key, never trusted itself ----------------------------------------------
def test_raw_bytes_must_name_a_given_key(tmp_path: Path) -> None:
    sig = GENERATED / "1.0.1" / "key-p256-files-sha256.sig"
    doc = json.loads(sig.read_text())
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    model = _copy(INPUTS / "model", tmp_path / "model")
    ignore = ["notes.txt", "ignored-dir"]
    qsafe.verify(model, sig, INPUTS / "ec-p256.pub", policy=CLASSICAL, ignore_paths=ignore)
    doc["verificationMaterial"]["publicKey"]["rawBytes"] = base64.b64encode(other).decode()
    with pytest.raises(SignatureError, match="matches none of the 1 given key"):
        qsafe.verify(model, json.dumps(doc).encode(), INPUTS / "ec-p256.pub", policy=CLASSICAL, ignore_paths=ignore)
    doc["verificationMaterial"]["publicKey"]["rawBytes"] = base64.b64encode(b"not a key").decode()
    with pytest.raises(FormatError, match="rawBytes"):
        qsafe.verify(model, json.dumps(doc).encode(), INPUTS / "ec-p256.pub", policy=CLASSICAL, ignore_paths=ignore)


@pytest.mark.parametrize("value", [1000.5, -1000.0, 0, "1000", True, None, 1e300])
def test_shard_size_must_be_a_positive_integer(value: object) -> None:
    from qsafe.manifest import Serialization

    with pytest.raises(FormatError, match="shard_size"):
        Serialization.from_dict({"method": "shards", "hash_type": "sha256", "allow_symlinks": False,
                                 "shard_size": value})
    assert Serialization.from_dict({"method": "shards", "hash_type": "sha256", "allow_symlinks": False,
                                    "shard_size": 1000.0}).shard_size == 1000


# --- model-signing's published fixtures: key and certificate methods -------------------------------------------
UPSTREAM_KEY = ["v0.3.1-elliptic-key", "v1.0.0-elliptic-key", "v1.0.1-elliptic-key", "v1.1.0-elliptic-key"]
UPSTREAM_CERT = ["v0.2.0-certificate", "v0.3.1-certificate", "v1.0.0-certificate", "v1.0.1-certificate",
                 "v1.1.0-certificate"]


def _upstream_model(tmp_path: Path, name: str) -> tuple[Path, Path]:
    src = _copy(UPSTREAM / name, tmp_path / name)
    sig = src / "model.sig"
    # The 0.3.1 and 1.0.0 key fixtures sign the single file signme-1 (resource ".").
    return (src / "signme-1" if not (src / "signme-2").exists() else src), sig


@pytest.mark.parametrize("name", UPSTREAM_KEY)
def test_upstream_key_fixtures(tmp_path: Path, name: str) -> None:
    model, sig = _upstream_model(tmp_path, name)
    pub = UPSTREAM / "keys" / "certificate" / "signing-key-pub.pem"
    result = qsafe.verify(model, sig, pub, policy=CLASSICAL, ignore_paths=["ignore-me"])
    assert result.algorithm == "ecdsa-p384"
    _tamper(model)
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, sig, pub, policy=CLASSICAL, ignore_paths=["ignore-me"])


@pytest.mark.parametrize("name", UPSTREAM_CERT)
def test_upstream_certificate_fixtures(tmp_path: Path, name: str) -> None:
    model, sig = _upstream_model(tmp_path, name)
    root = UPSTREAM / "keys" / "certificate" / "ca-cert.pem"
    result = qsafe.verify(model, sig, certificate_roots=[root], policy=CLASSICAL, ignore_paths=["ignore-me"])
    signer = result.signers[0]
    assert signer.kind == "certificate" and signer.certificate is not None
    assert signer.certificate.chain[-1] == "CN=root-ca"
    assert result.manifest.legacy == (name == "v0.2.0-certificate")  # the Digests/v0.1 predicate
    _tamper(model)
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, sig, certificate_roots=[root], policy=CLASSICAL, ignore_paths=["ignore-me"])


def test_legacy_predicate_needs_its_signature(tmp_path: Path) -> None:
    """The v0.2 bundle's PAE quirk is accepted only as a signature of that exact payload."""
    model, sig = _upstream_model(tmp_path, "v0.2.0-certificate")
    doc = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError):
        qsafe.verify(model, json.dumps(doc).encode(), certificate_roots=[UPSTREAM / "keys/certificate/ca-cert.pem"],
                     policy=CLASSICAL)


# --- the OMS specification's test vectors ----------------------------------------------------------------------
def test_oms_valid_vectors(tmp_path: Path) -> None:
    """valid/key and valid/certificate sign the files of model-signing's v1.0.1 fixture (model "model")."""
    model, _ = _upstream_model(tmp_path, "v1.0.1-elliptic-key")
    ignore = ["model.sig"]  # the fixture's own bundle lies in the folder; the vectors do not list it
    key = qsafe.verify(model, OMS / "valid/key.bundle.json", UPSTREAM / "keys/certificate/signing-key-pub.pem",
                       policy=CLASSICAL, ignore_paths=ignore)
    cert = qsafe.verify(model, OMS / "valid/certificate.bundle.json", policy=CLASSICAL, ignore_paths=ignore,
                        certificate_roots=[UPSTREAM / "keys/certificate/ca-cert.pem"])
    assert key.manifest.root_digest == cert.manifest.root_digest
    assert key.manifest.model_name == "model" and key.manifest.serialization.ignore_paths
    _tamper(model)
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, OMS / "valid/key.bundle.json", UPSTREAM / "keys/certificate/signing-key-pub.pem",
                     policy=CLASSICAL, ignore_paths=ignore)


@pytest.mark.parametrize("name,error", [
    ("invalid/empty.bundle.json", FormatError),
    ("invalid/missing-envelope.bundle.json", FormatError),
    ("invalid/missing-tlog-entries.bundle.json", FormatError),
    ("invalid/missing-verification-material.bundle.json", FormatError),
    ("invalid-payload/wrong-predicate.bundle.json", SignatureError),  # the vector's payload is not what was signed
])
def test_oms_invalid_vectors(tmp_path: Path, name: str, error: type[Exception]) -> None:
    model, _ = _upstream_model(tmp_path, "v1.0.1-elliptic-key")
    with pytest.raises(error):
        qsafe.verify(model, OMS / name, UPSTREAM / "keys/certificate/signing-key-pub.pem", policy=CLASSICAL,
                     ignore_paths=["model.sig"])


def test_oms_vectors_against_the_schemas() -> None:
    """As the spec's validate.sh: valid/ validates against the OMS bundle schema, invalid/ does not."""
    from .test_schema import _validator

    bundle_schema, statement_schema = _validator("bundle.schema.json"), _validator("statement.schema.json")
    for path in sorted((OMS / "valid").glob("*.json")):
        doc = json.loads(path.read_text())
        bundle_schema.validate(doc)
        statement_schema.validate(json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"])))
    for path in sorted((OMS / "invalid").glob("*.json")):
        text = path.read_text()
        assert not text.strip() or not bundle_schema.is_valid(json.loads(text)), path.name
    wrong = json.loads((OMS / "invalid-payload/wrong-predicate.bundle.json").read_text())
    assert not statement_schema.is_valid(json.loads(base64.b64decode(wrong["dsseEnvelope"]["payload"])))
