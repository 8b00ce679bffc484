"""Manifests: same resources, order and root digest as model-signing 1.1.1; qsafe's stricter path rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qsafe.errors import FormatError, InvalidInputError, UsageError
from qsafe.hashing import HashingConfig, hash_file
from qsafe.manifest import Manifest, Resource, Serialization, hash_model

from .helpers import make_model

ms_hashing = pytest.importorskip("model_signing.hashing")


def _ms(path: Path, **kw: object) -> list[tuple[str, str, str]]:
    cfg = ms_hashing.Config()
    method = kw.pop("method", "files")
    if method == "shards":
        cfg.use_shard_serialization(**kw)
    else:
        cfg.use_file_serialization(**kw)
    m = cfg.hash(path)
    return [(d.identifier, d.digest.algorithm, d.digest.digest_hex) for d in m.resource_descriptors()]


def _ours(path: Path, **kw: object) -> list[tuple[str, str, str]]:
    m = hash_model(path, HashingConfig(**kw))  # type: ignore[arg-type]
    return [(r.name, r.algorithm, r.digest) for r in m.resources]


@pytest.fixture()
def tricky(tmp_path: Path) -> Path:
    """Names whose component order differs from string order (a/b < a.txt), hidden files, empty files, git."""
    root = make_model(tmp_path / "tricky")
    (root / "a").mkdir()
    (root / "a" / "b").write_bytes(b"x" * 5000)
    (root / "a.txt").write_bytes(b"hello")
    (root / "A").write_bytes(b"")
    (root / ".hidden").write_bytes(b"h")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_bytes(b"ref")
    (root / ".gitattributes").write_bytes(b"*")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "w.bin").write_bytes(os.urandom(70000))
    return root


def test_files_match_model_signing(tricky: Path) -> None:
    assert _ours(tricky) == _ms(tricky)


def test_blake3_matches_model_signing(tricky: Path) -> None:
    assert _ours(tricky, algorithm="blake3") == _ms(tricky, hashing_algorithm="blake3")


@pytest.mark.parametrize("shard_size", [999, 4096, 65536])
def test_shards_match_model_signing(tricky: Path, shard_size: int) -> None:
    ours = _ours(tricky, method="shards", shard_size=shard_size)
    assert ours == _ms(tricky, method="shards", shard_size=shard_size)
    assert all(r[1] == f"sha256-sharded-{shard_size}" for r in ours)


def test_single_file_matches_model_signing(tricky: Path) -> None:
    f = tricky / "model.safetensors"
    assert _ours(f) == _ms(f) == [(".", "sha256", hash_file(f))]
    assert hash_model(f).model_name == "model.safetensors"


def test_root_digest_and_order(tricky: Path) -> None:
    m = hash_model(tricky)
    names = [r.name for r in m.resources]
    assert names.index("a/b") < names.index("a.txt")  # component order, not string order
    assert ".git/HEAD" not in names and ".gitattributes" not in names and ".hidden" in names
    import hashlib

    assert m.root_digest == hashlib.sha256(b"".join(bytes.fromhex(r.digest) for r in m.resources)).hexdigest()


def test_single_thread_equals_parallel(tricky: Path) -> None:
    assert _ours(tricky, workers=1) == _ours(tricky, workers=4)


def test_symlink_refused_by_default(model_dir: Path) -> None:
    (model_dir / "link.json").symlink_to(model_dir / "config.json")
    with pytest.raises(InvalidInputError, match="symlink"):
        hash_model(model_dir)


def test_symlink_inside_allowed_when_asked(model_dir: Path) -> None:
    (model_dir / "link.json").symlink_to("config.json")
    m = hash_model(model_dir, HashingConfig(allow_symlinks=True))
    digests = {r.name: r.digest for r in m.resources}
    assert digests["link.json"] == digests["config.json"]


@pytest.mark.parametrize("target", ["../outside.txt", "/etc/hostname"])
def test_symlink_escape_refused_even_when_allowed(model_dir: Path, target: str) -> None:
    (model_dir.parent / "outside.txt").write_text("secret")
    (model_dir / "escape").symlink_to(target)
    with pytest.raises(InvalidInputError, match="outside the model root"):
        hash_model(model_dir, HashingConfig(allow_symlinks=True))


def test_symlinked_directory_escape_refused(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x").write_text("x")
    (model_dir / "dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(InvalidInputError, match="outside the model root"):
        hash_model(model_dir, HashingConfig(allow_symlinks=True))


def test_special_file_refused(model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(InvalidInputError, match="special file"):
        hash_model(model_dir)


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/../b", "./a", "a//b", "a/", "", "a\\b", "..", "a/./b"])
def test_bad_resource_names_rejected(bad: str) -> None:
    ser = Serialization("files", "sha256", False)
    with pytest.raises(FormatError):
        Manifest("m", ser, (Resource(bad, "sha256", "00" * 32),))


@pytest.mark.parametrize("bad", ["../x:0:1", "/abs:0:1", "a:1:1", "a:x:2", "a:2:1", "a"])
def test_bad_shard_names_rejected(bad: str) -> None:
    ser = Serialization("shards", "sha256", False, 1)
    with pytest.raises(FormatError):
        Manifest("m", ser, (Resource(bad, "sha256-sharded-1", "00" * 32),))


def test_dot_only_for_single_file() -> None:
    ser = Serialization("files", "sha256", False)
    Manifest("m", ser, (Resource(".", "sha256", "00" * 32),))
    with pytest.raises(FormatError):
        Manifest("m", ser, (Resource(".", "sha256", "00" * 32), Resource("b", "sha256", "00" * 32)))


@pytest.mark.parametrize("bad", ["../up", "/etc"])
def test_bad_ignore_paths_rejected(model_dir: Path, bad: str) -> None:
    # The caller's ignore path is a usage error (exit 2); the same path inside a bundle is a malformed file (3).
    with pytest.raises(UsageError, match="ignore path"):
        HashingConfig(ignore_paths=(bad,))
    with pytest.raises(FormatError):
        Serialization.from_dict({"method": "files", "hash_type": "sha256", "allow_symlinks": False,
                                 "ignore_paths": [bad]})


def test_tensor_digests_recorded(model_dir: Path) -> None:
    m = hash_model(model_dir)
    st = m.tensors["model.safetensors"]
    assert sorted(t.name for t in st.tensors) == ["encoder.bias", "encoder.weight", "head.weight"]
    assert {t.name: (t.dtype, t.shape) for t in st.tensors}["encoder.weight"] == ("F32", (16, 8))
    assert not hash_model(model_dir, HashingConfig(tensor_digests=False)).tensors
    shards = hash_model(model_dir, HashingConfig(method="shards", shard_size=100))
    assert shards.tensors == m.tensors  # tensor digests do not depend on the serialization


def test_progress_reports_every_byte(model_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    hash_model(model_dir, HashingConfig(tensor_digests=False), progress=lambda n, t: seen.append((n, t)))
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert sum(n for n, _ in seen) == total and {t for _, t in seen} == {total}
