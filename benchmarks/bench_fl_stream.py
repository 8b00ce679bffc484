"""Benchmark: streaming ``qsafe fl encrypt`` / ``qsafe fl aggregate`` — throughput per core and peak memory.

1. Encryption per core (CPU seconds of this process, 1M values, packed BFV, SEAL driven directly as qsafe does):
   a context made for ``--max-clients`` (default 10: one 60-bit data prime) against one made for 1024 (the
   default of ``qsafe fl init``: two 40-bit primes), in the same run.
2. ``qsafe fl encrypt`` as a user runs it, at 2M and 16M float32 values (context for ``--max-clients``): wall time,
   values per second, peak RSS of the CLI process and of its largest worker.
3. ``qsafe fl aggregate`` of 3 updates at those sizes: wall time and peak RSS.

    python benchmarks/bench_fl_stream.py [--sizes 2000000,16000000] [--max-clients 10]
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


def per_core(max_clients: int) -> float:
    from qsafe._he.fastenc import BatchEncryptor
    from qsafe.federated import HEContext

    ctx = HEContext.generate(max_clients=max_clients).public()
    params, tctx, layout = ctx.params, ctx.tenseal_public(), ctx.raw_layout()
    flat = np.random.default_rng(0).uniform(-1, 1, 1 << 20)
    encryptor = BatchEncryptor(params, tctx, layout)
    encryptor.encrypt(flat[:params.values_per_ciphertext])  # warm up
    start = time.process_time()
    encryptor.encrypt(flat)
    rate = flat.size / (time.process_time() - start)
    encryptor.close()
    return rate


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
    parser.add_argument("--max-clients", type=int, default=10)
    args = parser.parse_args()
    from safetensors.numpy import save_file

    from qsafe import keys
    from qsafe.federated import HEContext

    sized, wide = per_core(args.max_clients), per_core(1024)
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"encryption per core, 1M values: context for {args.max_clients} clients {sized / 1e6:.2f} M/s, "
          f"for 1024 clients {wide / 1e6:.2f} M/s ({sized / wide:.2f}x)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ctx = HEContext.generate(max_clients=args.max_clients)
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
