"""Write the seed corpora (fuzz/seeds/NAME/) from the real files the tests use and from real qsafe outputs.

Run from the repository root: ``python -m fuzz.make_seeds``. Inputs: tests/vectors/age (CCTV), attestations/
(recorded evidence, shipped policies), and files qsafe itself writes here (signature bundles, safetensors files,
tar streams, federated updates, aggregates, contexts, audit logs, key files). The keys and the HE context the
harnesses verify with live in fuzz/data/ (fuzzing only; ``--new-keys`` makes new ones). Seeds are deterministic
where the format allows (no timestamps); signatures, nonces and ciphertexts are fresh on every run.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fuzz._common import DATA, ROOT

SEEDS = Path(__file__).resolve().parent / "seeds"
RECORDED = ROOT / "attestations" / "evidence" / "recorded"


def _write(name: str, files: dict[str, bytes]) -> None:
    folder = SEEDS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    print(f"{name}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


def make_data(new: bool) -> None:
    """fuzz/data: the HE context and the keys the harnesses verify with."""
    from qsafe.federated.context import HEContext
    from qsafe.keys import generate

    DATA.mkdir(exist_ok=True)
    if new or not (DATA / "he-secret.ctx").exists():
        HEContext.generate("bfv-packed", max_clients=8).save_secret(DATA / "he-secret.ctx", None)
    for name in ("fl-client", "fl-client2", "audit", "evaluator", "appraiser"):
        if new or not (DATA / f"{name}.key").exists():
            key = generate("ml-dsa-65")
            (DATA / f"{name}.key").write_bytes(key.to_pem())
            (DATA / f"{name}.pub").write_bytes(key.public_key().to_pem())


def _tiny_model(root: Path) -> None:
    from safetensors.numpy import save_file

    root.mkdir()
    (root / "config.json").write_text('{"hidden": 4}\n')
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, dtype=np.float16),
               "e": np.zeros((0, 3), dtype=np.int64)}, str(root / "model.safetensors"), metadata={"format": "np"})


def bundles(tmp: Path) -> None:
    from qsafe.hashing import HashingConfig
    from qsafe.keys import generate
    from qsafe.signing import sign

    model = tmp / "model"
    _tiny_model(model)
    files: dict[str, bytes] = {}
    for alg, cfg in (("ml-dsa-65", HashingConfig()), ("ml-dsa-44-ed25519", HashingConfig(method="shards", shard_size=64)),
                     ("ecdsa-p256", HashingConfig(algorithm="blake3")), ("ml-dsa-44", HashingConfig(tensor_digests=False))):
        sig = tmp / f"{alg}.sig"
        sign(model, generate(alg), signature=sig, config=cfg)
        data = sig.read_bytes()
        files[f"{alg}.sig"] = data
        payload = base64.b64decode(json.loads(data)["dsseEnvelope"]["payload"])
        files[f"{alg}.statement.json"] = payload
    files.update(_recorded_bundles())
    _write("bundle", files)


def _recorded_bundles() -> dict[str, bytes]:
    """Key, certificate and Sigstore (keyless) bundles from the interop vectors (issue 9)."""
    vectors = ROOT / "tests" / "vectors"
    paths = [*sorted((vectors / "oms-vectors" / "v1.0" / "valid").glob("*.bundle.json")),
             *sorted((vectors / "model-signing" / "generated" / "1.1.0").glob("cert-*.sig"))]
    return {f"recorded-{p.name}": p.read_bytes() for p in paths}


def safetensors_files(tmp: Path) -> None:
    from safetensors.numpy import save

    arrays = {
        "floats": {"a": np.linspace(0, 1, 8, dtype=np.float32), "b": np.eye(2, dtype=np.float64)},
        "ints": {"i8": np.arange(4, dtype=np.int8), "u16": np.arange(3, dtype=np.uint16), "bool": np.array([True])},
        "empty": {"z": np.zeros((0,), dtype=np.float32), "s": np.array(1.5, dtype=np.float16)},
    }
    files = {f"{k}.safetensors": save(v, metadata={"k": k}) for k, v in arrays.items()}
    files["none.safetensors"] = save({})
    _write("safetensors", files)


def age_files(tmp: Path) -> None:
    from qsafe._age import encrypt_with_passphrase

    files: dict[str, bytes] = {}
    for path in sorted((ROOT / "tests" / "vectors" / "age").iterdir()):
        if path.suffix or path.name.isupper() or path.name.startswith("README"):
            continue
        head, _, body = path.read_bytes().partition(b"\n\n")
        if b"compressed: zlib" in head:
            body = zlib.decompress(body)
        if len(body) <= 70_000:  # the multi-chunk STREAM vectors (to 16 MiB) are too big to mutate usefully
            files[path.name] = body
    files["qsafe-scrypt-armored"] = encrypt_with_passphrase(b"hello " * 40, b"password", work_factor=10)
    _write("age", files)


def _tar(members: Iterator[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def tars(tmp: Path) -> None:
    from qsafe._age._tar import tar_stream

    model = tmp / "tarmodel"
    _tiny_model(model)
    (model / "sub" / "deeper").mkdir(parents=True)
    (model / "sub" / "deeper" / "x.txt").write_bytes(b"x" * 700)
    (model / "run.sh").write_bytes(b"#!/bin/sh\n")
    (model / "run.sh").chmod(0o755)

    def members(long: bool) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
        d = tarfile.TarInfo("d")
        d.type = tarfile.DIRTYPE
        yield d, None
        f = tarfile.TarInfo("d/" + "long-name-" * (12 if long else 2))
        f.size = 5
        yield f, b"hello"

    _write("tar", {"qsafe-model.tar": b"".join(tar_stream(model)), "gnu.tar": _tar(members(True), tarfile.GNU_FORMAT),
                   "ustar.tar": _tar(members(False), tarfile.USTAR_FORMAT)})


def federated(tmp: Path) -> None:
    from qsafe.federated.aggregation import aggregate
    from qsafe.federated.audit import AuditWriter
    from qsafe.federated.context import HEContext
    from qsafe.federated.update import encrypt_update
    from qsafe.keys import load_private_key, load_public_key

    secret = HEContext.load(DATA / "he-secret.ctx")
    public = secret.public()
    keys = [load_private_key(DATA / f"{n}.key") for n in ("fl-client", "fl-client2")]
    rng = np.random.default_rng(15)
    tensors = [{"layer.weight": rng.uniform(-1, 1, (3, 4)).astype(np.float32), "layer.bias": np.zeros(2, np.float16)}
               for _ in keys]
    updates = [encrypt_update(t, public, k, 1) for t, k in zip(tensors, keys)]
    _write("fl_update", {"client1.qfl": updates[0].to_bytes(), "client2.qfl": updates[1].to_bytes()})
    result = aggregate(updates, public, [k.public_key() for k in keys], 1)
    assert result.aggregate is not None and not result.refused
    _write("fl_aggregate", {"round1.qfla": result.aggregate.to_bytes()})
    _write("he_context", {"public.ctx": public.public_bytes(), "secret.ctx": secret.secret_bytes()})

    log = io.BytesIO()
    writer = AuditWriter(log, load_private_key(DATA / "audit.key"), {"clients": 2, "rounds": 2})
    for rnd in (1, 2):
        writer.round(rnd, [{"client": i, "key_id": k.public_key().key_id, "digest": "sha256:" + "ab" * 32,
                            "norm": 0.5 + i, "decision": "accept" if i else "reject", "weight": 1.0, "note": ""}
                           for i, k in enumerate(keys)], "sha256:" + "cd" * 32)
    assert load_public_key(DATA / "audit.pub") == load_private_key(DATA / "audit.key").public_key()
    _write("audit_log", {"audit.jsonl": log.getvalue()})


def attestation(tmp: Path) -> None:
    evidence = ROOT / "attestations" / "evidence"
    _write("evidence", {p.name: p.read_bytes() for p in sorted(evidence.glob("*.json")) if p.stat().st_size < 64_000})
    reports = {}
    for path in (RECORDED / "nvtrust" / "hopperAttestationReport.txt", RECORDED / "trustee" / "hopper_coco_report1.txt",
                 RECORDED / "trustee" / "blackwellAttestationReport.txt",
                 RECORDED / "nvidia-attestation-sdk" / "hopperAttestationReportInvalidSignature.txt"):
        reports[f"{path.parent.name}-{path.stem}.bin"] = bytes.fromhex(path.read_text().strip())
    _write("spdm", reports)
    _write("snp", {"go-sev-guest.bin": (RECORDED / "go-sev-guest" / "attestation.bin").read_bytes(),
                   "trustee-vcek.bin": (RECORDED / "trustee" / "test-report.bin").read_bytes(),
                   "trustee-vlek.bin": (RECORDED / "trustee" / "test-vlek-report.bin").read_bytes()})
    _write("tdx", {p.name: p.read_bytes() for p in sorted((RECORDED / "dcap-qvl").iterdir())})
    _write("policy", {p.name: p.read_bytes() for p in sorted((ROOT / "attestations" / "policies").glob("*.json"))})


def key_files(tmp: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from qsafe._age._keys import encode_identity, encode_recipient
    from qsafe._age._keys import generate as age_generate
    from qsafe.keys import SIGNATURE_ALGORITHMS, generate

    files: dict[str, bytes] = {}
    pubs = []
    for alg in SIGNATURE_ALGORITHMS:
        key = generate(alg)
        pub = key.public_key()
        files[f"{alg}.key"] = key.to_pem()
        files[f"{alg}.pub"] = pub.to_pem()
        files[f"{alg}.spki.der"] = pub.to_der()
        files[f"{alg}.pkcs8.der"] = base64.b64decode(b"".join(key.to_pem().splitlines()[1:-1]))
        pubs.append(pub.to_pem())
    files["allowlist.pub"] = b"".join(pubs)
    sec1 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    files["ecdsa-p384.sec1.key"] = sec1
    for alg in ("ml-kem-768-x25519", "x25519"):
        ident = age_generate(alg)
        files[f"age-{alg}.txt"] = f"# created: fuzz seed\n{encode_identity(ident)}\n".encode()
        files[f"age-{alg}.recipients"] = f"{encode_recipient(ident.recipient())}\n".encode()
    _write("keys", files)


def model_evidence(tmp: Path) -> None:
    from fuzz.harnesses.model_evidence import MODEL
    from qsafe import model_evidence as me
    from qsafe.keys import load_private_key

    key = load_private_key(DATA / "evaluator.key")
    robustness = {"clean_accuracy": 0.97, "results": [
        {"kind": "empirical", "norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.71},
        {"kind": "certified", "norm": "l2", "radius": 0.25, "certified_accuracy": 0.6},
        {"kind": "text", "budget": 3, "attack_success_rate": 0.12}]}
    card = {"dp": {"epsilon": 3.0, "delta": 1e-5}, "audits": [{"name": "bias", "passed": True}], "owner": "ml-team"}
    files = {}
    for name, ptype, predicate in (("robustness", me.ROBUSTNESS_EVALUATION, robustness),
                                   ("card", "https://example.org/model-card/v1", card)):
        envelope = me.sign_model_evidence(MODEL, ptype, predicate, key)
        files[f"{name}.dsse.json"] = envelope
        files[f"{name}.statement.json"] = base64.b64decode(json.loads(envelope)["payload"])
    _write("model_evidence", files)


def results(tmp: Path) -> None:
    from fuzz._common import AT
    from qsafe.attestation.appraisal import appraise
    from qsafe.attestation.evidence import load_evidence
    from qsafe.attestation.policy import load_policy
    from qsafe.attestation.result import sign_result
    from qsafe.keys import load_private_key

    key = load_private_key(DATA / "appraiser.key")
    files = {}
    for ev, pol in (("hopper-h100", "nvidia-hopper-cc"), ("sev-snp-milan", "unsafe-development-replay")):
        evidence = load_evidence(ROOT / "attestations" / "evidence" / f"{ev}.evidence.json")
        result = appraise(evidence, load_policy(ROOT / "attestations" / "policies" / f"{pol}.json"), at=AT)
        files[f"{ev}.result.json"] = sign_result(result, key)
    _write("result", files)


def certificates(tmp: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from qsafe._attest.x509chain import load_der_or_pem
    from qsafe.bundle import read_bundle

    generated = ROOT / "tests" / "vectors" / "model-signing" / "generated"
    files = {}
    for path in sorted(generated.glob("*/cert-*.sig")):
        for i, der in enumerate(read_bundle(path).certificates):
            files[f"{path.parent.name}-{path.stem}-{i}.der"] = der
    for name in ("leaf.pem", "int-ca.pem", "root-ca.pem"):
        files[name.replace(".pem", ".der")] = load_der_or_pem((generated / "inputs" / name).read_bytes())[0].public_bytes(
            Encoding.DER)
    for path in sorted((RECORDED / "go-sev-guest").glob("*.testcer")):  # real vendor certificates too
        for i, cert in enumerate(load_der_or_pem(path.read_bytes())):
            files[f"{path.stem}-{i}.der"] = cert.public_bytes(Encoding.DER)
    _write("certificates", {k: v for k, v in files.items() if v not in list(files.values())[: list(files).index(k)]})


STEPS = {"bundle": bundles, "safetensors": safetensors_files, "age": age_files, "tar": tars, "federated": federated,
         "attestation": attestation, "keys": key_files, "model_evidence": model_evidence,
         "result": results, "certificates": certificates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--new-keys", action="store_true", help="make new fuzz/data keys and HE context")
    parser.add_argument("steps", nargs="*", help=f"only these steps (default all: {' '.join(STEPS)})")
    args = parser.parse_args()
    make_data(args.new_keys)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.steps or STEPS:
            STEPS[name](Path(tmp))


if __name__ == "__main__":
    main()
