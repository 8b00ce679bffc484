"""Directory mode: deterministic tar, and extraction refusing entries that escape DIR, links and specials."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

import qsafe
from qsafe._age._tar import extract, tar_stream
from qsafe.encryption import generate_identity
from qsafe.errors import FormatError, IntegrityError, UsageError


def _model(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "b" / "w.bin").write_bytes(os.urandom(1000))
    return root


def test_tar_is_deterministic(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    first = b"".join(tar_stream(model))
    os.utime(model / "a.txt", (1, 1))
    assert b"".join(tar_stream(model)) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == ["a.txt", "b", "b/w.bin"]


def test_symlink_refused_when_packing(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    (model / "link").symlink_to("/etc/passwd")
    with pytest.raises(UsageError):
        b"".join(tar_stream(model))


def _evil_tar(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, linkname, 0
        tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


@pytest.mark.parametrize(("name", "kind", "link"), [
    ("../escape.txt", tarfile.REGTYPE, ""), ("/abs.txt", tarfile.REGTYPE, ""), ("a/../../x", tarfile.REGTYPE, ""),
    ("lnk", tarfile.SYMTYPE, "/etc/passwd"), ("hard", tarfile.LNKTYPE, "x"), ("fifo", tarfile.FIFOTYPE, "")])
def test_unsafe_entries_refused(tmp_path: Path, name: str, kind: bytes, link: str) -> None:
    identity, recipient = generate_identity("x25519")
    sealed = io.BytesIO()
    qsafe.encrypt(io.BytesIO(_evil_tar(name, kind, link)), sealed, recipients=[recipient])
    with pytest.raises(FormatError):
        qsafe.decrypt(io.BytesIO(sealed.getvalue()), extract=tmp_path / "out", identities=[identity])
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert not list(tmp_path.glob(".*qsafe-tmp"))


def test_truncated_directory_leaves_nothing(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    (model / "big").write_bytes(os.urandom(200_000))
    identity, recipient = generate_identity()
    qsafe.encrypt(model, tmp_path / "m.age", recipients=[recipient])
    data = (tmp_path / "m.age").read_bytes()
    with pytest.raises(IntegrityError):
        qsafe.decrypt(io.BytesIO(data[:-100]), extract=tmp_path / "out", identities=[identity])
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*qsafe-tmp"))


def test_output_inside_input_dir_refused(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    with pytest.raises(UsageError):
        qsafe.encrypt(model, model / "x.age", recipients=[generate_identity()[1]])


def test_extract_plain_tar_stream(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    extract(io.BytesIO(b"".join(tar_stream(model))), tmp_path / "x")  # type: ignore[arg-type]
    assert (tmp_path / "x" / "a.txt").read_text() == "alpha"
