"""Item 3: an encrypted directory cannot amplify on extraction. A few KB of authentic age ciphertext holding a
sparse tar entry (every GNU/PAX variant) declares 1 GiB of holes: `qsafe decrypt --extract` refuses it (exit 3)
and writes nothing. Deep, duplicate and colliding entries are format errors too, never exit 1."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import pytest

import qsafe
from qsafe import _limits
from qsafe._age._tar import _Budget, _Counted
from qsafe.encryption import generate_identity
from qsafe.errors import FormatError

GIB = 1 << 30


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _pax(name: str, headers: dict[str, str], data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.pax_headers = headers
    return _tar((info, data))


def _old_gnu_sparse() -> bytes:
    """An old-GNU type 'S' entry: one 1-byte data region at offset 1 GiB - 1, realsize 1 GiB, 1 byte stored."""
    info = tarfile.TarInfo("big.bin")
    info.size = 1
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    block[156:157] = tarfile.GNUTYPE_SPARSE
    block[386:398] = b"%011o\0" % (GIB - 1)  # sparse[0].offset
    block[398:410] = b"%011o\0" % 1  # sparse[0].numbytes
    block[482:483] = b"\0"  # not extended
    block[483:495] = b"%011o\0" % GIB  # realsize
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + b"x".ljust(512, b"\0") + b"\0" * 1024


def _sparse_1_0() -> bytes:
    sparse_map = f"1\n{GIB - 1}\n1\n".encode().ljust(512, b"\0")
    return _pax("GNUSparseFile.0/big.bin", {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                            "GNU.sparse.name": "big.bin", "GNU.sparse.realsize": str(GIB)},
                sparse_map + b"x")


HOSTILE = {
    "gnu-old-S": _old_gnu_sparse,
    "pax-0.0": lambda: _pax("big.bin", {"GNU.sparse.size": str(GIB), "GNU.sparse.numblocks": "1",
                                        "GNU.sparse.offset": str(GIB - 1), "GNU.sparse.numbytes": "1"}, b"x"),
    "pax-0.1": lambda: _pax("big.bin", {"GNU.sparse.size": str(GIB), "GNU.sparse.map": f"{GIB - 1},1"}, b"x"),
    "pax-1.0": _sparse_1_0,
    "pax-unknown-gnu-sparse-key": lambda: _pax("big.bin", {"GNU.sparse.realsize": str(GIB)}, b"x"),
    "2000 folders deep": lambda: _tar((tarfile.TarInfo("d/" * 2000 + "x.bin"), b"x")),
    "name too long": lambda: _tar((tarfile.TarInfo("n" * (_limits.ARCHIVE_MAX_NAME_BYTES + 1)), b"x")),
    "same file twice": lambda: _tar((tarfile.TarInfo("a.bin"), b"1"), (tarfile.TarInfo("a.bin"), b"2")),
    "file under a file": lambda: _tar((tarfile.TarInfo("a.bin"), b"1"), (tarfile.TarInfo("a.bin/b.bin"), b"2")),
}


def _seal(tmp_path: Path, plaintext: bytes) -> tuple[Path, Path]:
    identity, recipient = generate_identity("ml-kem-768-x25519")
    ident = tmp_path / "id.txt"
    ident.write_text(identity + "\n")
    sealed = tmp_path / "archive.age"
    qsafe.encrypt(io.BytesIO(plaintext), sealed, recipients=[recipient])
    return sealed, ident


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_is_written(cli, tmp_path: Path, case: str) -> None:
    plaintext = HOSTILE[case]()
    if "sparse" in case or case.startswith(("gnu", "pax")):
        assert len(plaintext) <= 10 * 1024  # a few KB that declare a 1 GiB file
    sealed, ident = _seal(tmp_path, plaintext)
    assert sealed.stat().st_size < 12 * 1024
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli(["decrypt", sealed, "-i", ident, "--extract", tmp_path / "out"])
    assert r.exit_code == 3, (case, r.stderr)
    assert r.stdout == "" and "internal error" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no hidden .out.*.qsafe-tmp


def test_sparse_variants_are_what_tarfile_expands() -> None:
    """The fixtures really are sparse entries of 1 GiB for tarfile (what the old code wrote out in full)."""
    for case in ("gnu-old-S", "pax-0.0", "pax-0.1", "pax-1.0"):
        with tarfile.open(fileobj=io.BytesIO(HOSTILE[case]()), mode="r|") as tar:
            member = next(iter(tar))
            assert member.issparse() and member.size == GIB, case


def test_written_bytes_never_exceed_consumed_bytes() -> None:
    counted = _Counted(io.BytesIO(b"y" * 100))
    budget = _Budget(counted)
    counted.read(60)
    budget.spend(60, "a")
    with pytest.raises(FormatError, match="more bytes than the archive holds"):
        budget.spend(1, "a")


def test_a_real_directory_still_round_trips(cli, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "w.bin").write_bytes(bytes(range(256)) * 40)
    (model / "sub" / "c.json").write_text("{}")
    identity, recipient = generate_identity("ml-kem-768-x25519")
    (tmp_path / "id.txt").write_text(identity + "\n")
    assert cli(["encrypt", model, "-r", recipient, "-o", tmp_path / "m.age"]).exit_code == 0
    r = cli(["decrypt", tmp_path / "m.age", "-i", tmp_path / "id.txt", "--extract", tmp_path / "out"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "out" / "w.bin").read_bytes() == (model / "w.bin").read_bytes()
    assert struct.unpack("<H", (tmp_path / "out" / "w.bin").read_bytes()[:2]) == (256,)
