"""Benchmark: streaming ``qsafe fl encrypt`` / ``qsafe fl aggregate`` — throughput per core and peak memory.

1. Encryption per core (CPU seconds of this process, 1M values, packed BFV): TenSEAL vectors (``bfv_vector`` +
   ``serialize`` + conversion to the wire form, the previous implementation) against SEAL's encoder and
   encryptor driven directly (what qsafe does now), in the same run.
2. ``qsafe fl encrypt`` as a user runs it, at 2M and 16M float32 values: wall time, values per second, peak RSS of
   the CLI process and of its largest worker.
3. ``qsafe fl aggregate`` of 3 updates at 1M and 8M values: wall time and peak RSS.

    python benchmarks/bench_fl_stream.py [--sizes 2000000,16000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_PEAK = """
import resource, sys
from qsafe.cli import run
if __name__ == "__main__":
    sys.argv = ["qsafe", *sys.argv[1:]]
    try:
        run()
    except SystemExit as exc:
        code = exc.code
    peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print("PEAK", code, peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def per_core() -> tuple[float, float]:
    from qsafe._he import packing, raw
    from qsafe._he.backend import tenseal
    from qsafe._he.fastenc import BatchEncryptor
    from qsafe.federated import HEContext

    ts = tenseal()
    ctx = HEContext.generate().public()
    params, tctx, layout = ctx.params, ctx.tenseal_public(), ctx.raw_layout()
    flat = np.random.default_rng(0).uniform(-1, 1, 1 << 20)
    start = time.process_time()
    for row in packing.pack(packing.quantize(flat, params), params):
        raw.pack(bytes(ts.bfv_vector(tctx, row.tolist()).serialize()), layout)
    old = flat.size / (time.process_time() - start)
    encryptor = BatchEncryptor(params, tctx, layout)
    start = time.process_time()
    encryptor.encrypt(flat)
    new = flat.size / (time.process_time() - start)
    encryptor.close()
    return old, new


def cli(tmp: Path, *args: str) -> tuple[float, float, float]:
    (tmp / "peak.py").write_text(_PEAK)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(tmp / "peak.py"), *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    line = [x for x in out.stdout.splitlines() if x.startswith("PEAK")][-1].split()
    if line[1] not in ("0", "None"):
        raise RuntimeError(out.stderr)
    return wall, int(line[2]) / 1024, int(line[3]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000000,16000000")
    args = parser.parse_args()
    from safetensors.numpy import save_file

    from qsafe import keys
    from qsafe.federated import HEContext

    old, new = per_core()
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"encryption per core, 1M values: TenSEAL vectors {old / 1e6:.2f} M/s, SEAL direct {new / 1e6:.2f} M/s "
          f"({new / old:.2f}x)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ctx = HEContext.generate()
        ctx.save_public(tmp / "public.ctx")
        (tmp / "clients").mkdir()
        for i in range(3):
            key = keys.generate()
            (tmp / f"c{i}.key").write_bytes(key.to_pem())
            (tmp / "clients" / f"c{i}.pub").write_bytes(key.public_key().to_pem())
        print("| command | values | wall s | M values/s | peak RSS MiB (CLI) | largest worker MiB |")
        print("|---|---|---|---|---|---|")
        for size in (int(s) for s in args.sizes.split(",")):
            files = []
            for i in range(3):
                save_file({"w": np.random.default_rng(i).uniform(-1, 1, size).astype(np.float32)},
                          str(tmp / "u.safetensors"))
                files.append(str(tmp / f"u{size}-{i}.qfl"))
                wall, peak, worker = cli(tmp, "fl", "encrypt", str(tmp / "u.safetensors"), "--context",
                                         str(tmp / "public.ctx"), "--key", str(tmp / f"c{i}.key"), "--round", "1",
                                         "-o", files[-1])
                if i == 0:
                    print(f"| fl encrypt | {size:,} | {wall:.2f} | {size / wall / 1e6:.2f} | {peak:.0f} | {worker:.0f} |")
            wall, peak, worker = cli(tmp, "fl", "aggregate", *files, "--context", str(tmp / "public.ctx"), "--clients",
                                     str(tmp / "clients"), "--round", "1", "-o", str(tmp / f"agg{size}.qfl"))
            print(f"| fl aggregate (3 updates) | {size:,} each | {wall:.2f} | {3 * size / wall / 1e6:.2f} | "
                  f"{peak:.0f} | {worker:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
