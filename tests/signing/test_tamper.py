"""Tamper-evidence: hypothesis mutates signed bundles and signed models and expects the specific error."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qsafe
from qsafe import keys
from qsafe.errors import FormatError, ModelMismatchError, SignatureError
from qsafe.manifest import read_safetensors_header

from .helpers import make_model

POLICY = qsafe.VerificationPolicy()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, keys.PublicKey]:
    key = keys.generate("ml-dsa-44")  # smallest signatures: fastest tamper loops
    model = make_model(tmp_path_factory.mktemp("tamper") / "model")
    qsafe.sign(model, key, signature=model.parent / "model.sig")
    return model, (model.parent / "model.sig").read_bytes(), key.public_key()


def _verify_bytes(model: Path, bundle: bytes, pub: keys.PublicKey) -> None:
    qsafe.verify(model, bundle, [pub], policy=POLICY)


def _mutate(data: bytes, op: str, pos: int, value: int) -> bytes:
    i = pos % max(len(data), 1)
    if op == "flip":
        return data[:i] + bytes([data[i] ^ (value or 1)]) + data[i + 1 :]
    if op == "truncate":
        return data[:i]
    if op == "append":
        return data + bytes([value])
    if op == "insert":
        return data[:i] + bytes([value]) + data[i:]
    j = (i + 1 + value) % len(data)  # swap two bytes
    a, b = sorted((i, j))
    return data[:a] + data[b : b + 1] + data[a + 1 : b] + data[a : a + 1] + data[b + 1 :] if data[a] != data[b] else data[:i]


OPS = st.sampled_from(["flip", "truncate", "append", "insert", "swap"])


@SETTINGS
@given(op=OPS, pos=st.integers(0, 1 << 20), value=st.integers(0, 255))
def test_payload_tamper_is_signature_error(signed: tuple[Path, bytes, keys.PublicKey], op: str, pos: int,
                                           value: int) -> None:
    model, bundle, pub = signed
    doc = json.loads(bundle)
    payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
    mutated = _mutate(payload, op, pos, value)
    if mutated == payload or not mutated:
        return
    doc["dsseEnvelope"]["payload"] = base64.b64encode(mutated).decode()
    with pytest.raises(SignatureError):
        _verify_bytes(model, json.dumps(doc).encode(), pub)


@SETTINGS
@given(op=OPS, pos=st.integers(0, 1 << 20), value=st.integers(0, 255))
def test_signature_tamper_is_signature_error(signed: tuple[Path, bytes, keys.PublicKey], op: str, pos: int,
                                             value: int) -> None:
    model, bundle, pub = signed
    doc = json.loads(bundle)
    sig = base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
    mutated = _mutate(sig, op, pos, value)
    if mutated == sig or not mutated:
        return
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(mutated).decode()
    with pytest.raises(SignatureError):
        _verify_bytes(model, json.dumps(doc).encode(), pub)


def test_hint_or_algorithm_swap_is_signature_error(signed: tuple[Path, bytes, keys.PublicKey]) -> None:
    model, bundle, pub = signed
    doc = json.loads(bundle)
    doc["verificationMaterial"]["publicKey"]["hint"] = "00" * 32
    with pytest.raises(SignatureError):
        _verify_bytes(model, json.dumps(doc).encode(), pub)
    doc = json.loads(bundle)
    doc["verificationMaterial"]["publicKey"]["keyDetails"] = "ML_DSA_87"
    with pytest.raises(SignatureError):
        _verify_bytes(model, json.dumps(doc).encode(), pub)


@SETTINGS
@given(op=OPS, pos=st.integers(0, 1 << 20), value=st.integers(0, 255))
def test_raw_bundle_tamper_never_verifies(signed: tuple[Path, bytes, keys.PublicKey], op: str, pos: int,
                                          value: int) -> None:
    """Any change to the file: unparseable -> FormatError, else the signature (or hint) fails -> SignatureError,
    unless the change is JSON-insignificant (whitespace), which must still verify."""
    model, bundle, pub = signed
    mutated = _mutate(bundle, op, pos, value)
    try:
        same = json.loads(mutated) == json.loads(bundle)
    except ValueError:
        with pytest.raises(FormatError):
            _verify_bytes(model, mutated, pub)
        return
    if same:
        _verify_bytes(model, mutated, pub)
        return
    with pytest.raises((FormatError, SignatureError)):
        _verify_bytes(model, mutated, pub)


@SETTINGS
@given(data=st.data())
def test_model_byte_tamper_names_file_and_tensor(tmp_path_factory: pytest.TempPathFactory,
                                                 signed: tuple[Path, bytes, keys.PublicKey],
                                                 data: st.DataObject) -> None:
    model, bundle, pub = signed
    copy = make_model(tmp_path_factory.mktemp("copy") / "model")  # same seed -> same bytes as the signed model
    files = sorted(p for p in copy.rglob("*") if p.is_file())
    target = data.draw(st.sampled_from(files))
    raw = bytearray(target.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    target.write_bytes(bytes(raw))
    rel = target.relative_to(copy).as_posix()
    with pytest.raises(ModelMismatchError) as exc:
        _verify_bytes(copy, bundle, pub)
    assert exc.value.changed == [rel] and not exc.value.missing and not exc.value.extra
    if rel == "model.safetensors":
        original = read_safetensors_header(model / rel)
        hit = [t.name for t in original.tensors if t.begin <= pos < t.end]
        if hit:  # a data byte: exactly that tensor is named
            assert exc.value.changed_tensors[rel] == hit
        else:  # a header byte: the header is named, or it no longer parses, or tensors moved
            assert exc.value.changed_tensors[rel]


def test_non_canonical_base64_is_format_error(signed: tuple[Path, bytes, keys.PublicKey]) -> None:
    """'...A=' and '...B=' decode to the same bytes; only the canonical spelling is accepted."""
    model, bundle, pub = signed
    doc = json.loads(bundle)
    sig = doc["dsseEnvelope"]["signatures"][0]["sig"]
    body = sig.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(body[-1])
    twin = body[:-1] + alphabet[last ^ 1] + sig[len(body):]
    assert base64.b64decode(twin) == base64.b64decode(sig)  # ML-DSA-44: 2420 bytes, 2 unused bits at the end
    doc["dsseEnvelope"]["signatures"][0]["sig"] = twin
    with pytest.raises(FormatError, match="canonical"):
        _verify_bytes(model, json.dumps(doc).encode(), pub)
