"""Streaming aggregation of .qfl files: the same aggregate as the in-memory path, refusals one by one, memory
flat in the update size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qsafe import keys
from qsafe.errors import IntegrityError
from qsafe.federated import EncryptedAggregate, HEContext, aggregate, decrypt_aggregate, encrypt_update
from qsafe.federated.stream_aggregate import aggregate_files, infer_round_of_files


def test_streamed_aggregate_is_byte_identical_and_refuses_one_by_one(tmp_path: Path) -> None:
    ctx = HEContext.generate()
    ks = [keys.generate() for _ in range(4)]
    allow = [k.public_key() for k in ks[:3]]
    rng = np.random.default_rng(1)
    plain = [{"w": rng.uniform(-1, 1, (20, 1000)).astype(np.float32)} for _ in ks]
    ups = [encrypt_update(p, ctx.public(), k, 5) for p, k in zip(plain, ks)]
    paths = []
    for i, u in enumerate(ups):
        paths.append(tmp_path / f"u{i}.qfl")
        paths[-1].write_bytes(u.to_bytes())
    tampered = bytearray(ups[1].to_bytes())
    tampered[-4000] ^= 1
    (tmp_path / "tampered.qfl").write_bytes(bytes(tampered))
    (tmp_path / "replay.qfl").write_bytes(ups[0].to_bytes())
    (tmp_path / "junk.qfl").write_bytes(b"qsafe-fl-update/v1\n\x00\x00")
    inputs = [paths[0], tmp_path / "tampered.qfl", paths[1], tmp_path / "replay.qfl", paths[3],
              tmp_path / "junk.qfl", paths[2]]
    assert infer_round_of_files(inputs, ctx.public(), allow) == 5
    result = aggregate_files(inputs, ctx.public(), allow, 5, tmp_path / "agg.qfl")
    reasons = {Path(r.source).name: r.reason for r in result.refused}
    assert set(reasons) == {"tampered.qfl", "replay.qfl", "u3.qfl", "junk.qfl"}
    assert "signed digest" in reasons["tampered.qfl"] and "replay" in reasons["replay.qfl"]
    assert "unknown client" in reasons["u3.qfl"] and reasons["junk.qfl"]
    memory = aggregate(ups[:3], ctx.public(), allow, 5).aggregate
    assert memory is not None
    assert (tmp_path / "agg.qfl").read_bytes() == memory.to_bytes()
    mean = decrypt_aggregate(EncryptedAggregate.from_bytes((tmp_path / "agg.qfl").read_bytes()), ctx)
    expected = np.mean([p["w"].astype(np.float64) for p in plain[:3]], axis=0)
    assert np.abs(mean["w"] - expected).max() <= ctx.params.error_bound(1) + 1e-6


def test_nothing_is_written_when_nothing_is_accepted_or_a_file_changes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = HEContext.generate()
    k = keys.generate()
    (tmp_path / "u.qfl").write_bytes(encrypt_update({"w": np.zeros(10, np.float32)}, ctx.public(), k, 1).to_bytes())
    result = aggregate_files([tmp_path / "u.qfl"], ctx.public(), [k.public_key()], 2, tmp_path / "agg.qfl")
    assert not result.accepted and not (tmp_path / "agg.qfl").exists()
    from qsafe.federated import stream_aggregate

    real = stream_aggregate._read
    calls = {"n": 0}

    def flaky(handle, offset, size):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        data = real(handle, offset, size)
        return data if calls["n"] == 1 else bytes([data[0] ^ 1]) + data[1:]  # changed after the check

    monkeypatch.setattr(stream_aggregate, "_read", flaky)
    with pytest.raises(IntegrityError, match="changed while it was aggregated"):
        aggregate_files([tmp_path / "u.qfl"], ctx.public(), [k.public_key()], 1, tmp_path / "agg.qfl")
    assert not (tmp_path / "agg.qfl").exists() and not list(tmp_path.glob(".agg.qfl.*"))


_PEAK = """
import sys
from qsafe.cli import run
if __name__ == "__main__":
    sys.argv = ["qsafe", *sys.argv[1:]]
    try:
        run()
    except SystemExit as exc:
        code = exc.code
    peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(code, peak)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fl_aggregate_peak_memory_is_flat_in_the_update_size(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    ctx = HEContext.generate()
    ctx.save_public(tmp_path / "public.ctx")
    (tmp_path / "clients").mkdir()
    (tmp_path / "peak.py").write_text(_PEAK)
    ks = [keys.generate() for _ in range(3)]
    for i, k in enumerate(ks):
        (tmp_path / f"c{i}.key").write_bytes(k.to_pem())
        (tmp_path / "clients" / f"c{i}.pub").write_bytes(k.public_key().to_pem())
    peaks = {}
    for values in (1_000_000, 8_000_000):
        files = []
        for i in range(3):
            save_file({"w": np.random.default_rng(i).uniform(-1, 1, values).astype(np.float32)},
                      str(tmp_path / "u.safetensors"))
            files.append(str(tmp_path / f"u{values}-{i}.qfl"))
            subprocess.run([sys.executable, "-m", "qsafe", "fl", "encrypt", str(tmp_path / "u.safetensors"),
                            "--context", str(tmp_path / "public.ctx"), "--key", str(tmp_path / f"c{i}.key"),
                            "--round", "1", "-o", files[-1]], check=True, capture_output=True)
        out = subprocess.run([sys.executable, str(tmp_path / "peak.py"), "fl", "aggregate", *files, "--context",
                              str(tmp_path / "public.ctx"), "--clients", str(tmp_path / "clients"), "--round", "1",
                              "-o", str(tmp_path / f"agg{values}.qfl"), "--json"],
                             check=False, capture_output=True, text=True, timeout=600)
        code, peak = out.stdout.strip().splitlines()[-1].split()
        assert code in ("0", "None"), out.stderr
        assert json.loads(out.stdout[:out.stdout.rindex("}") + 1])["count"] == 3
        peaks[values] = int(peak) / 1024
    print(f"fl aggregate peak RSS MiB: 3 x 1M values {peaks[1_000_000]:.1f}, 3 x 8M values {peaks[8_000_000]:.1f}")
    assert peaks[8_000_000] <= peaks[1_000_000] + 16, peaks  # 3 x 80 MB of updates: flat, not 3 x 8x
