"""Generate model-signing fixture bundles with whatever model-signing version runs this script.

Run once per version, each in its own throwaway virtual environment (versions cannot share one), e.g.:

    python3 -m venv /tmp/ms-1.0.1 && /tmp/ms-1.0.1/bin/pip install model-signing==1.0.1 pyOpenSSL
    /tmp/ms-1.0.1/bin/python tests/vectors/model-signing/generated/generate.py

The inputs (models, test keys, a test CA) are created on the first run and then reused, so every version signs
the same bytes with the same keys; outputs go to ``<this folder>/<version>/``. This is test tooling: qsafe's
tests only read its outputs (``tests/signing/test_generations.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = pathlib.Path(__file__).resolve().parent
INPUTS = HERE / "inputs"


def _write_key(key: ec.EllipticCurvePrivateKey, name: str) -> None:
    (INPUTS / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (INPUTS / f"{name}.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          ca: bool) -> x509.Certificate:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name("release@example.test")]), critical=False)
    return b.sign(issuer_key, hashes.SHA384())


def make_inputs() -> None:
    if INPUTS.exists():
        return
    INPUTS.mkdir()
    model = INPUTS / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "ignored-dir").mkdir()
    (model / "weights.bin").write_bytes(bytes((i * 7 + 3) % 256 for i in range(2500)))
    (model / "config.json").write_text('{"hidden": 8, "layers": 2}\n')
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (model / "empty.txt").write_bytes(b"")
    (model / "notes.txt").write_text("unsigned notes\n")
    (model / "ignored-dir" / "scratch.bin").write_bytes(b"\x00" * 64)
    (INPUTS / "single.bin").write_bytes(bytes(range(256)) * 9)
    for name, curve in (("ec-p256", ec.SECP256R1()), ("ec-p384", ec.SECP384R1())):
        _write_key(ec.generate_private_key(curve), name)
    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root = _cert("qsafe test root CA", root_key, "qsafe test root CA", root_key, True)
    inter = _cert("qsafe test intermediate CA", int_key, "qsafe test root CA", root_key, True)
    leaf = _cert("qsafe test release signer", leaf_key, "qsafe test intermediate CA", int_key, False)
    _write_key(leaf_key, "leaf")
    for name, cert in (("root-ca", root), ("int-ca", inter), ("leaf", leaf)):
        (INPUTS / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main() -> None:
    import model_signing
    from model_signing import hashing, signing

    make_inputs()
    # signing.Config() starts with a Sigstore signer, which contacts Sigstore's TUF repository (no network
    # here); the key and certificate signers below replace it, so skip that default.
    signing.Config.use_sigstore_signer = lambda self, **_: self  # type: ignore[method-assign]
    version = model_signing.__version__
    out = HERE / version
    out.mkdir(exist_ok=True)
    algorithms = ["sha256", "blake2"]
    cases: list[dict[str, object]] = []
    failed: list[dict[str, str]] = []

    def run(name: str, model: pathlib.Path, method: str, alg: str, signer: str, ignore: list[str] = ()) -> None:
        hc = hashing.Config()
        if method == "files":
            hc.use_file_serialization(hashing_algorithm=alg)
        else:
            hc.use_shard_serialization(hashing_algorithm=alg, shard_size=1000)
        hc.set_ignored_paths(paths=[model / p for p in ignore] if ignore else [], ignore_git_paths=True)
        cfg = signing.Config().set_hashing_config(hc)
        if signer.startswith("key-"):
            cfg.use_elliptic_key_signer(private_key=INPUTS / f"{signer[4:]}.key")
        else:
            cfg.use_certificate_signer(private_key=INPUTS / "leaf.key", signing_certificate=INPUTS / "leaf.pem",
                                       certificate_chain=[INPUTS / "int-ca.pem"])
        try:
            cfg.sign(model, out / f"{name}.sig")
        except Exception as exc:  # noqa: BLE001 - an old version's own bug: recorded, not hidden
            failed.append({"bundle": f"{name}.sig", "error": f"{type(exc).__name__}: {exc}"})
            return
        cases.append({"bundle": f"{name}.sig", "model": str(model.relative_to(INPUTS)), "method": method,
                      "hash": alg, "signer": signer, "ignore_paths": list(ignore),
                      "call": f"hashing.Config().use_{'file' if method == 'files' else 'shard'}_serialization("
                              f"hashing_algorithm={alg!r}{', shard_size=1000' if method == 'shards' else ''}); "
                              f"set_ignored_paths(paths={list(ignore)!r}); "
                              + ("use_elliptic_key_signer" if signer.startswith("key-") else
                                 "use_certificate_signer(leaf, chain=[int-ca])")})

    model = INPUTS / "model"
    for method in ("files", "shards"):
        for alg in algorithms:
            run(f"key-p256-{method}-{alg}", model, method, alg, "key-ec-p256", ["notes.txt", "ignored-dir"])
    run("key-p384-files-sha256", model, "files", "sha256", "key-ec-p384", ["notes.txt", "ignored-dir"])
    run("key-p256-single-file", INPUTS / "single.bin", "files", "sha256", "key-ec-p256")
    run("key-p256-single-file-shards", INPUTS / "single.bin", "shards", "sha256", "key-ec-p256")
    run("cert-files-sha256", model, "files", "sha256", "certificate", ["notes.txt", "ignored-dir"])
    run("cert-shards-blake2", model, "shards", "blake2", "certificate", ["notes.txt", "ignored-dir"])
    (out / "cases.json").write_text(json.dumps({"model_signing": version, "python": sys.version.split()[0],
                                                "cases": cases, "failed_in_this_version": failed},
                                               indent=2) + "\n")
    print(f"model-signing {version}: {len(cases)} bundles in {out}")


if __name__ == "__main__":
    main()
