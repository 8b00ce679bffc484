"""The bounded safetensors header parser and the tensor digest definition."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from qsafe._hashing.safetensors import MAX_HEADER_BYTES, digest_safetensors, parse_header
from qsafe.errors import FormatError
from qsafe.manifest import TensorDigester, read_safetensors_header, tensor_digest

from .helpers import make_model


def _file(tmp_path: Path, header: bytes | dict[str, object], data: bytes = b"", *, length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = tmp_path / "x.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return p


def test_header_agrees_with_the_safetensors_library(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    header = read_safetensors_header(path)
    with safe_open(str(path), framework="numpy") as f:
        assert {t.name for t in header.tensors} == set(f.keys())
        assert header.metadata == f.metadata()
        for t in header.tensors:
            arr = f.get_tensor(t.name)
            assert t.shape == arr.shape
            raw = path.read_bytes()[t.begin : t.end]
            assert raw == arr.tobytes()


def test_tensor_digest_definition(model_dir: Path) -> None:
    """The documented bytes: label, u64 LE length-prefixed name/dtype, ndim, dims, nbytes, then data."""
    data = np.arange(6, dtype=np.float32).tobytes()
    expected = hashlib.sha256(
        b"qsafe/v1 safetensors-tensor\n"
        + struct.pack("<Q", 1) + b"w" + struct.pack("<Q", 3) + b"F32"
        + struct.pack("<QQQ", 2, 2, 3) + struct.pack("<Q", 24) + data
    ).hexdigest()
    assert tensor_digest("w", "F32", (2, 3), data) == expected
    chunks = [data[:5], data[5:17], data[17:]]
    assert tensor_digest("w", "F32", (2, 3), iter(chunks), nbytes=24) == expected
    d = TensorDigester("w", "F32", [2, 3], 24)
    for c in chunks:
        d.update(c)
    assert d.hexdigest() == expected
    assert tensor_digest("w", "F32", (3, 2), data) != expected  # shape is bound
    assert tensor_digest("w", "I32", (2, 3), data) != expected  # dtype is bound
    assert tensor_digest("v", "F32", (2, 3), data) != expected  # name is bound


def test_digester_refuses_wrong_lengths() -> None:
    d = TensorDigester("w", "U8", [2], 2)
    with pytest.raises(FormatError):
        d.update(b"abc")
    d.update(b"a")
    with pytest.raises(FormatError):
        d.hexdigest()


def test_file_pass_matches_tensor_digest(model_dir: Path) -> None:
    path = model_dir / "model.safetensors"
    result = digest_safetensors(path, "sha256", whole_file=True)
    raw = path.read_bytes()
    assert result.file_digest == hashlib.sha256(raw).digest()
    header = read_safetensors_header(path)
    assert result.header_digest == hashlib.sha256(raw[: header.data_start]).hexdigest()
    for t, digest in result.tensors:
        assert digest == tensor_digest(t.name, t.dtype, t.shape, raw[t.begin : t.end])


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "length", "match"),
    [
        (b"{}", b"", MAX_HEADER_BYTES + 1, "cap"),
        (b"{}", b"", 10_000, "past the end"),
        (b"[]", b"", None, "start with"),
        (b"{not json", b"", None, "not JSON"),
        (b'{"a": 1, "a": 2}', b"", None, "duplicate"),
        (b"{\xff}", b"", None, "not JSON"),
        (b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}", b"", None, "JSON"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "v": F32x2}, bytes(8), None, "overlaps"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), None, "gap"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8), None, "no tensor covers"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(4), None, "out of range"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), None, "needs"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), None, "non-negative"),
        ({"w": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, bytes(8), None, "non-negative"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), None, "out of range"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2**64]}}, bytes(8), None, "64-bit"),
        ({"w": {"dtype": "f32; rm -rf", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), None, "dtype"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, bytes(8), None, "exactly"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "exactly"),
        ({"__metadata__": {"a": 1}}, b"", None, "metadata"),
        ({"": F32x2}, bytes(8), None, "name"),
        ({"w": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, bytes(4), None, "shape"),
    ],
)
def test_hostile_headers_rejected(tmp_path: Path, header: bytes | dict[str, object], data: bytes,
                                  length: int | None, match: str) -> None:
    path = _file(tmp_path, header, data, length=length)
    with pytest.raises(FormatError, match=match):
        read_safetensors_header(path)


def test_too_short_file(tmp_path: Path) -> None:
    p = tmp_path / "short.safetensors"
    p.write_bytes(b"\x01\x00")
    with pytest.raises(FormatError, match="too short"):
        read_safetensors_header(p)


def test_zero_sized_tensors_and_padding_accepted(tmp_path: Path) -> None:
    header = json.dumps({"e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [0, 0]}, "w": F32x2}).encode()
    header += b" " * (-len(header) % 8)
    path = _file(tmp_path, header, bytes(8))
    h = read_safetensors_header(path)
    assert [(t.name, t.nbytes) for t in h.tensors] == [("e", 0), ("w", 8)]


def test_unknown_dtype_skips_only_the_size_check(tmp_path: Path) -> None:
    path = _file(tmp_path, {"w": {"dtype": "F128X", "shape": [1], "data_offsets": [0, 3]}}, bytes(3))
    assert read_safetensors_header(path).tensors[0].dtype == "F128X"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), data=st.binary(max_size=64))
def test_random_headers_raise_only_format_error(raw: bytes, data: bytes) -> None:
    try:
        parse_header(b"{" + raw, 8 + 1 + len(raw) + len(data))
    except FormatError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0, max_value=255))
def test_mutated_real_headers_raise_only_format_error(tmp_path: Path, pos: int, byte: int) -> None:
    src = make_model(tmp_path / "m") / "model.safetensors"
    raw = bytearray(src.read_bytes())
    h = read_safetensors_header(src)
    i = pos % h.data_start
    raw[i] = byte
    p = tmp_path / "mut.safetensors"
    p.write_bytes(bytes(raw))
    try:
        got = read_safetensors_header(p)
    except FormatError:
        return
    assert all(h.data_start <= t.begin <= t.end <= len(raw) for t in got.tensors)


def _two_pass_reference(path: Path) -> tuple[str, str, dict[str, str]]:
    """Today's definition, computed the slow way: the file hashed whole, then every tensor from its own bytes."""
    raw = path.read_bytes()
    header = read_safetensors_header(path)
    tensors = {t.name: tensor_digest(t.name, t.dtype, t.shape, raw[t.begin : t.end]) for t in header.tensors}
    return hashlib.sha256(raw).hexdigest(), hashlib.sha256(raw[: header.data_start]).hexdigest(), tensors


def _varied_model(root: Path, big: int) -> Path:
    """Several tensors, an empty one, metadata, and a ``5 * big``-byte tensor spanning several read chunks."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(11)
    tensors = {
        "a.small": rng.standard_normal((3, 5)).astype(np.float32),
        "b.empty": np.zeros((0, 4), dtype=np.float32),
        "c.big": np.frombuffer(rng.bytes(5 * big), dtype=np.uint8).reshape(5, big),
        "d.bias": rng.standard_normal(7).astype(np.float64),
        "e.int": rng.integers(-9, 9, (2, 3, 4)).astype(np.int16),
    }
    root.mkdir()
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "np", "note": "x" * 300})
    return root


@pytest.mark.parametrize("chunk", [None, 7, 4099, 1 << 20])
def test_fused_pass_matches_two_pass_definition(tmp_path: Path, chunk: int | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from qsafe._hashing import engines
    from qsafe.hashing import HashingConfig
    from qsafe.manifest import hash_model

    if chunk is not None:  # odd chunk sizes put chunk boundaries inside and between tensors
        monkeypatch.setattr(engines, "READ_CHUNK", chunk)
    # the real 4 MiB chunks get a 5 MiB tensor; tiny chunks a smaller one (Python-level loop per chunk)
    varied_model = _varied_model(tmp_path / "varied", 1 << 20 if chunk is None or chunk > 4096 else 601)
    path = varied_model / "model.safetensors"
    file_hex, header_hex, tensors = _two_pass_reference(path)
    assert len(tensors) == 5 and read_safetensors_header(path).metadata["format"] == "np"
    fused = digest_safetensors(path, "sha256", whole_file=True)
    assert fused.file_digest is not None and fused.file_digest.hex() == file_hex
    assert fused.header_digest == header_hex
    assert {t.name: d for t, d in fused.tensors} == tensors
    size = path.stat().st_size
    # shards: one shard with 1 worker (fused), with 2 (shard and tensor jobs apart), and several shards
    for cfg in (HashingConfig(), HashingConfig(method="shards", shard_size=size, workers=1),
                HashingConfig(method="shards", shard_size=size, workers=2),
                HashingConfig(method="shards", shard_size=size // 3)):
        m = hash_model(varied_model, cfg)
        assert m.tensors["model.safetensors"].header == header_hex
        assert {t.name: t.digest for t in m.tensors["model.safetensors"].tensors} == tensors
        # the fused pass's file/shard digests equal plain hashing without tensor digests
        plain = hash_model(varied_model, HashingConfig(method=cfg.method, shard_size=cfg.shard_size,
                                                       tensor_digests=False, workers=cfg.workers))
        assert m.resources == plain.resources
    assert hash_model(varied_model).resources[0].digest == file_hex
