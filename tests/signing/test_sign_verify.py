"""Sign and verify through the Python API: round trips, wrong keys, policy, named mismatches."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import qsafe
from qsafe import keys
from qsafe.bundle import read_bundle
from qsafe.errors import FormatError, ModelMismatchError, OutputExistsError, PolicyError, SignatureError
from qsafe.hashing import HashingConfig
from qsafe.manifest import hash_model, read_safetensors_header
from qsafe.verifying import verify_bundle

from .helpers import write_keypair

POLICY = qsafe.VerificationPolicy()


@pytest.mark.parametrize("alg", ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"])
def test_round_trip_every_mldsa(model_dir: Path, alg: str) -> None:
    key = keys.generate(alg)
    qsafe.sign(model_dir, key)
    result = qsafe.verify(model_dir, model_dir / "model.sig", key.public_key(), policy=POLICY)
    assert result.algorithm == alg and result.post_quantum
    assert result.key_id == key.public_key().key_id
    bundle = read_bundle(model_dir / "model.sig")
    assert bundle.keyid == key.public_key().key_id
    assert "model.sig" in result.manifest.serialization.ignore_paths


def test_single_file_model(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    f = model_dir / "model.safetensors"
    qsafe.sign(f, mldsa_key, signature=model_dir.parent / "file.sig")
    qsafe.verify(f, model_dir.parent / "file.sig", [mldsa_key.public_key()], policy=POLICY)
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x10
    f.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(f, model_dir.parent / "file.sig", [mldsa_key.public_key()], policy=POLICY)
    last = max(read_safetensors_header(f).tensors, key=lambda t: t.end).name
    assert exc.value.changed == ["."] and exc.value.changed_tensors["."] == [last]


def test_default_signature_beside_a_file(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir / "config.json", mldsa_key)
    assert (model_dir / "model.sig").exists()


@pytest.mark.parametrize("config", [HashingConfig(algorithm="blake3"), HashingConfig(method="shards", shard_size=64)])
def test_round_trip_other_serializations(model_dir: Path, mldsa_key: keys.PrivateKey, config: HashingConfig) -> None:
    qsafe.sign(model_dir, mldsa_key, config=config)
    qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=POLICY)
    (model_dir / "config.json").write_text('{"hidden": 9}\n')
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=POLICY)
    assert exc.value.changed == ["config.json"]


def test_wrong_key_is_signature_error(model_dir: Path, mldsa_key: keys.PrivateKey, other_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    with pytest.raises(SignatureError, match="none of the 1 given key"):
        qsafe.verify(model_dir, model_dir / "model.sig", [other_key.public_key()], policy=POLICY)


def test_any_of_several_keys(model_dir: Path, mldsa_key: keys.PrivateKey, other_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    qsafe.verify(model_dir, model_dir / "model.sig", [other_key.public_key(), mldsa_key.public_key()], policy=POLICY)


def test_keys_from_files(model_dir: Path, mldsa_key: keys.PrivateKey, tmp_path: Path) -> None:
    _, pub = write_keypair(mldsa_key, tmp_path / "signer")
    qsafe.sign(model_dir, mldsa_key)
    qsafe.verify(model_dir, model_dir / "model.sig", pub, policy=POLICY)
    qsafe.verify(model_dir, model_dir / "model.sig", [str(pub)], policy=POLICY)


def test_policy_algorithm_allow_list(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    strict = qsafe.VerificationPolicy(algorithms=frozenset({"ml-dsa-87"}))
    with pytest.raises(PolicyError, match="not allowed"):
        qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=strict)


def test_policy_is_required(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    with pytest.raises(TypeError):
        qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()])  # type: ignore[call-arg]


def test_every_change_is_named(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    st = model_dir / "model.safetensors"
    data = bytearray(st.read_bytes())
    header = read_safetensors_header(st)
    by_name = {t.name: t for t in header.tensors}
    for name in ("encoder.bias", "head.weight"):
        data[by_name[name].begin] ^= 0xFF
    st.write_bytes(bytes(data))
    (model_dir / "tokenizer" / "vocab.txt").unlink()
    (model_dir / "new.bin").write_bytes(b"x")
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=POLICY)
    err = exc.value
    assert err.changed == ["model.safetensors"]
    assert err.missing == ["tokenizer/vocab.txt"] and err.extra == ["new.bin"]
    assert err.changed_tensors == {"model.safetensors": ["encoder.bias", "head.weight"]}
    assert "encoder.bias, head.weight" in str(err) and "missing: tokenizer/vocab.txt" in str(err)


def test_changed_header_named(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    st = model_dir / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(raw.replace(b'"format":"np"', b'"format":"pt"'))
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=POLICY)
    assert exc.value.changed_tensors == {"model.safetensors": ["(header)"]}


def test_verify_bundle_needs_no_model(model_dir: Path, mldsa_key: keys.PrivateKey, tmp_path: Path) -> None:
    qsafe.sign(model_dir, mldsa_key, signature=tmp_path / "m.sig")
    signed = hash_model(model_dir)
    shutil.rmtree(model_dir)
    manifest = verify_bundle(tmp_path / "m.sig", [mldsa_key.public_key()], POLICY)
    assert manifest.root_digest == signed.root_digest
    assert manifest.tensors == signed.tensors


def test_signature_never_overwrites_a_model_file(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    before = (model_dir / "config.json").read_bytes()
    with pytest.raises(OutputExistsError):
        qsafe.sign(model_dir, mldsa_key, signature=model_dir / "config.json")
    assert (model_dir / "config.json").read_bytes() == before
    with pytest.raises(OutputExistsError):
        qsafe.sign(model_dir / "config.json", mldsa_key, signature=model_dir / "config.json")


def test_resign_overwrites_previous_bundle(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    qsafe.sign(model_dir, mldsa_key)
    qsafe.sign(model_dir, mldsa_key)
    qsafe.verify(model_dir, model_dir / "model.sig", [mldsa_key.public_key()], policy=POLICY)


def test_malformed_bundle_is_format_error(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    (model_dir.parent / "bad.sig").write_text(json.dumps({"mediaType": "nope"}))
    with pytest.raises(FormatError):
        qsafe.verify(model_dir, model_dir.parent / "bad.sig", [mldsa_key.public_key()], policy=POLICY)
    with pytest.raises(FormatError, match="cannot read"):
        qsafe.verify(model_dir, model_dir.parent / "absent.sig", [mldsa_key.public_key()], policy=POLICY)


@pytest.mark.parametrize("alg", ["ml-dsa-65-ed25519", "ecdsa-p256"])
def test_composite_and_ecdsa_round_trip(model_dir: Path, alg: str) -> None:
    key = keys.generate(alg)
    qsafe.sign(model_dir, key)
    bundle = read_bundle(model_dir / "model.sig")
    assert bundle.key_details == key.public_key().key_details
    policy = qsafe.VerificationPolicy(allow_classical=alg == "ecdsa-p256")
    result = qsafe.verify(model_dir, model_dir / "model.sig", [key.public_key()], policy=policy)
    assert result.post_quantum == (alg != "ecdsa-p256")
    if alg == "ecdsa-p256":
        with pytest.raises(PolicyError):
            qsafe.verify(model_dir, model_dir / "model.sig", [key.public_key()], policy=POLICY)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/../../x"])
def test_signed_bundle_with_escaping_name_is_refused(model_dir: Path, mldsa_key: keys.PrivateKey, name: str) -> None:
    """Even a correctly signed bundle cannot make the verifier look outside the model."""
    import hashlib

    from qsafe._labels import DSSE_PAYLOAD_TYPE, MLDSA_CONTEXT_MODEL_BUNDLE
    from qsafe.bundle import build_bundle, pae

    digest = "00" * 32
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": hashlib.sha256(bytes(32)).hexdigest()}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
                      "resources": [{"name": name, "digest": digest, "algorithm": "sha256"}]},
    }
    payload = json.dumps(statement).encode()
    pub = mldsa_key.public_key()
    data = build_bundle(payload, mldsa_key.sign(pae(DSSE_PAYLOAD_TYPE, payload), MLDSA_CONTEXT_MODEL_BUNDLE),
                        hint=pub.model_signing_hint, details=pub.key_details, keyid=pub.key_id)
    with pytest.raises(FormatError, match="relative POSIX path|component"):
        qsafe.verify(model_dir, data, [pub], policy=POLICY)
    with pytest.raises(FormatError):
        verify_bundle(data, [pub], POLICY)


def test_file_growing_during_hashing_is_refused(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qsafe._hashing import engines
    from qsafe.errors import InvalidInputError

    original = engines.stream_range

    def grow_then_read(path: Path, *args: object, **kw: object) -> None:
        if path.name == "config.json":
            with open(path, "ab") as handle:
                handle.write(b"appended during hashing")
        original(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(engines, "stream_range", grow_then_read)
    with pytest.raises(InvalidInputError, match="changed while"):
        hash_model(model_dir, HashingConfig(workers=1))


def test_missing_or_unreadable_model_is_a_clear_error(model_dir: Path, mldsa_key: keys.PrivateKey) -> None:
    from qsafe.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="cannot read model"):
        hash_model(model_dir / "absent")
    if os.geteuid() != 0:  # root reads anything
        (model_dir / "config.json").chmod(0)
        with pytest.raises(InvalidInputError, match="cannot read"):
            hash_model(model_dir)
