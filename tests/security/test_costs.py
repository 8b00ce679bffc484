"""Item 7: costs bounded by what is signed. A 60 MB safetensors header describing 1,000,000 empty tensors is never
parsed: sign refuses it from byte counts before parsing (exit 3), verify and load compare the raw header with its
signed digest first (exit 12), so none of them allocates per tensor. One set of limits (qsafe/_limits.py) is
applied by sign, verify and load alike, and sign never writes a bundle verify would refuse."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from qsafe import _json, _limits

from .conftest import leftovers, snapshot

N = 1_000_000


@pytest.fixture(scope="module")
def million_header(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60 MB header of 1,000,000 empty F32 tensors (a valid safetensors layout apart from the count)."""
    entries = b",".join(b'"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(N))
    header = b"{" + entries + b"}"
    path = tmp_path_factory.mktemp("big") / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    assert len(header) > 55_000_000
    return path


@pytest.fixture()
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every JSON document parsed during the test, by what it was (to prove a header was NOT parsed)."""
    seen: list[str] = []
    real = _json.loads

    def spy(data: bytes | str, what: str, **kw: int) -> object:
        seen.append(what)
        return real(data, what, **kw)

    monkeypatch.setattr(_json, "loads", spy)
    return seen


def _measured(cli, args: list[object]):  # type: ignore[no-untyped-def]
    tracemalloc.start()
    start = time.perf_counter()
    try:
        r = cli(args)
        return r, tracemalloc.get_traced_memory()[1], time.perf_counter() - start
    finally:
        tracemalloc.stop()


def test_a_million_tensor_header_is_refused_without_parsing(cli, ws: Path, million_header: Path,
                                                            parses: list[str]) -> None:
    model = ws / "model"
    (model / "model.safetensors").write_bytes(million_header.read_bytes())
    size = (model / "model.safetensors").stat().st_size
    before = snapshot(ws)
    calls = {"sign": ["sign", model, "--key", ws / "signer.key", "--signature", ws / "new.sig"],
             "verify": ["verify", model, "--key", ws / "signer.pub"],
             "load": ["load", model, "--key", ws / "signer.pub", "--unsafe-skip-attestation", "--framework", "numpy"]}
    for command, args in calls.items():
        r, peak, seconds = _measured(cli, args)
        if command == "sign":
            assert r.exit_code == 3 and "refused before parsing" in r.stderr, r.stderr
        else:
            assert r.exit_code == 12 and "changed: model.safetensors" in r.stderr, r.stderr
        assert "safetensors header" not in parses  # the 1,000,000 entries were never turned into objects
        # held at once: the raw header (60 MB) at most, never per-tensor objects (~1 GB when parsed)
        assert peak < 1.5 * size, (command, peak)
        assert seconds < 30, (command, seconds)  # verify took 21 s and 1.1 GB before; now it hashes 60 MB
        assert snapshot(ws) == before and not (ws / "new.sig").exists() and not leftovers(ws)


def test_one_set_of_limits_in_sign_verify_and_load(cli, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lowering one limit changes sign, verify and load together: what sign refuses, verify and load refuse."""
    model = ws / "model"  # signed with 2 tensors in model.safetensors
    monkeypatch.setattr(_limits, "SAFETENSORS_MAX_TENSORS", 1)
    r = cli(["sign", model, "--key", ws / "signer.key", "--signature", ws / "new.sig"])
    assert r.exit_code == 3 and not (ws / "new.sig").exists(), r.stderr
    for args in (["verify", model, "--key", ws / "signer.pub"],
                 ["load", model, "--key", ws / "signer.pub", "--unsafe-skip-attestation", "--framework", "numpy"]):
        r = cli(args)
        assert r.exit_code == 3 and "more than 1 tensors" in r.stderr, r.stderr


def test_sign_never_writes_a_bundle_verify_would_refuse(cli, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = ws / "model"
    size = (model / "model.sig").stat().st_size
    monkeypatch.setattr(_limits, "BUNDLE_MAX_BYTES", size - 1)
    import qsafe.bundle

    monkeypatch.setattr(qsafe.bundle, "MAX_BUNDLE_BYTES", size - 1)
    r = cli(["verify", model, "--key", ws / "signer.pub"])
    assert r.exit_code == 3 and "larger than" in r.stderr  # verify refuses the real bundle under this limit
    before = snapshot(ws)
    r = cli(["sign", model, "--key", ws / "signer.key", "--signature", ws / "new.sig"])
    assert r.exit_code == 2 and "more than" in r.stderr and "nothing was written" in r.stderr, r.stderr
    assert snapshot(ws) == before and not leftovers(ws)


def test_changed_header_of_similar_size_is_still_diagnosed(cli, ws: Path) -> None:
    """Bounded, not blind: a tampered header about as large as the signed one is parsed for the diagnosis."""
    from safetensors.numpy import load_file, save_file

    model = ws / "model"
    tensors = load_file(str(model / "model.safetensors"))
    tensors["backdoor"] = tensors["head.bias"] * 0
    save_file(tensors, str(model / "model.safetensors"), metadata={"format": "np"})
    r = cli(["verify", model, "--key", ws / "signer.pub"])
    assert r.exit_code == 12 and "backdoor (added)" in r.stderr
