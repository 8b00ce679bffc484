"""Streaming client encryption (``qsafe fl encrypt``): same container as the in-memory path, memory flat in the
update's size, and a progress ETA that does not count the setup."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from qsafe import keys
from qsafe.errors import InvalidInputError
from qsafe.federated import EncryptedUpdate, HEContext, aggregate, decrypt_aggregate, encrypt_update, verify_update
from qsafe.federated.stream import encrypt_file


@pytest.fixture(scope="module")
def ctx() -> HEContext:
    return HEContext.generate()


def test_streamed_update_is_the_same_container_as_the_in_memory_one(ctx: HEContext, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {"w": rng.uniform(-1, 1, (70, 5000)).astype(np.float32), "b": rng.uniform(-1, 1, 33).astype(np.float16),
               "s": np.array(0.25, dtype=np.float64)}
    save_file(tensors, str(tmp_path / "u.safetensors"))
    key = keys.generate()
    buf = io.BytesIO()
    info = encrypt_file(tmp_path / "u.safetensors", buf, ctx.public(), key, 7, workers=1)
    streamed = EncryptedUpdate.from_bytes(buf.getvalue())
    assert info.bytes == len(buf.getvalue()) and info.ciphertexts == len(streamed.ciphertexts)
    verify_update(streamed, ctx.public(), [key.public_key()], 7)
    memory = encrypt_update(tensors, ctx.public(), key, 7)
    same = {k: v for k, v in memory.header.items() if k not in ("nonce", "ciphertext_sha256")}
    assert {k: v for k, v in streamed.header.items() if k not in ("nonce", "ciphertext_sha256")} == same
    result = aggregate([streamed, memory], ctx.public(), [key.public_key()], 7)
    assert len(result.refused) == 1 and "replay" in result.refused[0].reason  # same client twice: a replay
    other = keys.generate()
    mixed = aggregate([streamed, encrypt_update(tensors, ctx.public(), other, 7)], ctx.public(),
                      [key.public_key(), other.public_key()], 7)
    assert mixed.aggregate is not None and not mixed.refused
    mean = decrypt_aggregate(mixed.aggregate, ctx)
    for name, value in tensors.items():
        assert mean[name].dtype == value.dtype and mean[name].shape == value.shape
        tolerance = ctx.params.error_bound(1) + (1e-3 if value.dtype == np.float16 else 1e-6)
        assert np.abs(mean[name].astype(np.float64) - value.astype(np.float64)).max() <= tolerance


def test_streamed_encryption_refuses_bad_values_before_signing(ctx: HEContext, tmp_path: Path) -> None:
    bad = np.zeros(100_000, np.float32)
    bad[90_000] = 3.0  # in the fourth batch-sized piece? no: in the first batch, late
    save_file({"a": np.zeros(300_000, np.float32), "z": bad}, str(tmp_path / "u.safetensors"))
    with pytest.raises(InvalidInputError, match="'z' has \\|x\\| up to 3"):
        encrypt_file(tmp_path / "u.safetensors", io.BytesIO(), ctx.public(), keys.generate(), 1, workers=1)


_PEAK = """
import resource, sys
from qsafe.cli import run
if __name__ == "__main__":  # encryption workers (spawned) import this file again
    sys.argv = ["qsafe", *sys.argv[1:]]
    try:
        run()
    except SystemExit as exc:
        code = exc.code
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            main = int(line.split()[1])
    print(code, main, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fl_encrypt_peak_memory_is_flat_in_the_update_size(ctx: HEContext, tmp_path: Path) -> None:
    ctx.save_public(tmp_path / "public.ctx")
    key = keys.generate()
    (tmp_path / "c.key").write_bytes(key.to_pem())
    (tmp_path / "peak.py").write_text(_PEAK)
    peaks = {}
    for values in (2_000_000, 16_000_000):
        rng = np.random.default_rng(values)
        save_file({"w": rng.uniform(-1, 1, values).astype(np.float32)}, str(tmp_path / "u.safetensors"))
        out = subprocess.run([sys.executable, str(tmp_path / "peak.py"), "fl", "encrypt", str(tmp_path / "u.safetensors"),
                              "--context", str(tmp_path / "public.ctx"), "--key", str(tmp_path / "c.key"), "--round",
                              "1", "-o", str(tmp_path / f"u{values}.qfl"), "--json"],
                             check=False, capture_output=True, text=True, timeout=500)
        code, main_kib, workers_kib = out.stdout.strip().splitlines()[-1].split()
        assert code in ("0", "None"), out.stderr
        report = json.loads(out.stdout[:out.stdout.rindex("}") + 1])
        assert report["values"] == values and report["bytes_per_value"] < 10.1
        peaks[values] = (int(main_kib) / 1024, int(workers_kib) / 1024)
    small, large = peaks[2_000_000], peaks[16_000_000]
    print(f"peak RSS MiB (main, largest worker): 2M values {small}, 16M values {large}")
    # 16M float32 values are 61 MiB on disk and 160 MB encrypted; the client holds a few batches of 2 MiB
    assert large[0] <= small[0] + 16, peaks  # flat: not 8x the size
    assert large[0] <= 256 and large[1] <= 256, peaks  # the interpreter, numpy, TenSEAL, plus a few batches


def test_progress_eta_ignores_the_setup_before_the_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from qsafe.cli import _common

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with _common.progress(1000, "x") as advance:
        time.sleep(0.5)  # setup: imports, key loading
        advance(100)
        time.sleep(0.05)
        advance(100)
        bar = advance.__closure__  # the bar lives in the callback's closure
        assert bar is not None
        (bars,) = [c.cell_contents for c in bar if isinstance(c.cell_contents, list)]
        assert bars[0].eta < 2.0  # ~0.2 s of work left; with the clock started at setup it said ~2-4 s
