"""Run every harness (or those named) for a time or an execution budget; fail on any crash, hang or OOM.

    python fuzz/run.py [--seconds N | --runs N] [--jobs J] [NAME ...]

Each harness NAME fuzzes with its working corpus fuzz/corpus/NAME/ (kept between runs, git-ignored) and its seeds
fuzz/seeds/NAME/ (in the repository); crashers go to fuzz/artifacts/NAME/. libFuzzer flags: -timeout=10 (a hang
is an input that runs over 10 s), -rss_limit_mb=256 (peak memory), -print_final_stats=1. The summary (one line
per harness: executions, coverage, features, corpus, crashes) is printed, and written as JSON with --json FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(ROOT))

from fuzz.harnesses import HARNESSES

_DONE = re.compile(r"#(\d+)\s+(?:DONE|INITED|NEW|REDUCE|pulse)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
# libFuzzer dictionaries (fuzz/dicts/*.dict) per harness: format tokens the mutator splices in.
DICTS = {"bundle": ("json", "bundle"), "safetensors": ("json", "safetensors"), "age": ("age",), "tar": ("tar",),
         "fl_update": ("json", "fl"), "fl_aggregate": ("json", "fl"), "he_context": ("json", "fl"),
         "evidence": ("json", "evidence"), "tdx": ("json", "evidence"), "policy": ("json", "policy"),
         "audit_log": ("json", "audit_log"), "keys": ("keys",), "model_evidence": ("json", "model_evidence"),
         "result": ("json", "result"), "certificates": ("x509",)}


def _dictionary(name: str) -> list[str]:
    parts = DICTS.get(name, ())
    if not parts:
        return []
    merged = FUZZ / "logs" / f"{name}.dict"
    merged.parent.mkdir(exist_ok=True)
    merged.write_text("".join((FUZZ / "dicts" / f"{p}.dict").read_text() for p in parts))
    return [f"-dict={merged}"]


def run_one(name: str, seconds: int | None, runs: int | None, extra: list[str]) -> dict[str, object]:
    corpus, seeds, artifacts = FUZZ / "corpus" / name, FUZZ / "seeds" / name, FUZZ / "artifacts" / name
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    log = FUZZ / "logs" / f"{name}.{time.strftime('%Y%m%dT%H%M%S')}.log"  # one per run: --report sums them
    log.parent.mkdir(exist_ok=True)
    budget = [f"-max_total_time={seconds}"] if seconds else []
    budget += [f"-runs={runs}"] if runs else []
    cmd = [sys.executable, "-m", "fuzz", name, *budget, "-timeout=10", "-rss_limit_mb=256", "-print_final_stats=1",
           f"-artifact_prefix={artifacts}/", *_dictionary(name), *extra, str(corpus),
           *([str(seeds)] if seeds.is_dir() else [])]
    start = time.monotonic()
    with open(log, "wb") as out:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return summarize(name, log, rc, round(time.monotonic() - start))


def summarize(name: str, log: Path, rc: int, seconds: int) -> dict[str, object]:
    """The figures of one libFuzzer log: executions, last cov/ft, corpus size, peak RSS, crash files."""
    corpus, artifacts = FUZZ / "corpus" / name, FUZZ / "artifacts" / name
    text = log.read_text(errors="replace")
    last = _DONE.findall(text)
    stats = dict(_STAT.findall(text))
    crashes = sorted(p.name for p in artifacts.iterdir())
    return {"harness": name, "rc": rc, "seconds": seconds,
            "executions": int(stats.get("number_of_executed_units", 0)), "cov": int(last[-1][1]) if last else 0,
            "ft": int(last[-1][2]) if last else 0, "corpus": int(last[-1][3]) if last else len(list(corpus.iterdir())),
            "peak_rss_mb": int(stats.get("peak_rss_mb", 0)), "new_crash_files": crashes, "log": str(log)}


def report(names: list[str]) -> list[dict[str, object]]:
    """Every run so far of each harness (its logs in fuzz/logs): total executions, latest coverage and corpus."""
    rows = []
    for name in names:
        runs = [summarize(name, log, 0, 0) for log in sorted((FUZZ / "logs").glob(f"{name}.*.log"))]
        if not runs:
            continue
        rows.append({**runs[-1], "runs": len(runs), "executions": sum(int(r["executions"]) for r in runs),  # type: ignore[call-overload]
                     "peak_rss_mb": max(int(r["peak_rss_mb"]) for r in runs)})  # type: ignore[call-overload]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"harnesses (default all: {' '.join(HARNESSES)})")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "0")) or None)
    parser.add_argument("--runs", type=int, default=None, help="executions per harness instead of a time")
    parser.add_argument("--jobs", type=int, default=1, help="harnesses fuzzed at once")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--libfuzzer", default="", help="extra libFuzzer flags, space separated")
    parser.add_argument("--report", action="store_true", help="fuzz nothing: sum every logged run per harness")
    args = parser.parse_args()
    names = args.names or list(HARNESSES)
    if args.report:
        rows = report(names)
        print(f"{'harness':14} {'runs':>4} {'execs':>10} {'cov':>6} {'ft':>7} {'corpus':>7} {'rss MB':>6}  crash files")
        for r in rows:
            print(f"{r['harness']:14} {r['runs']:>4} {r['executions']:>10} {r['cov']:>6} {r['ft']:>7} {r['corpus']:>7} "
                  f"{r['peak_rss_mb']:>6}  {' '.join(r['new_crash_files']) or '-'}")  # type: ignore[arg-type]
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return
    unknown = set(names) - {*HARNESSES, "selftest"}
    if unknown:
        parser.error(f"unknown harness(es): {', '.join(sorted(unknown))}")
    if not args.seconds and not args.runs:
        args.seconds = 60
    before = {n: set(os.listdir(FUZZ / "artifacts" / n)) if (FUZZ / "artifacts" / n).is_dir() else set() for n in names}
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda n: run_one(n, args.seconds, args.runs, args.libfuzzer.split()), names))
    print(f"{'harness':14} {'rc':>3} {'execs':>10} {'cov':>6} {'ft':>7} {'corpus':>7} {'rss MB':>6} {'s':>6}  crashes")
    failed = False
    for r in results:
        new = sorted(set(r["new_crash_files"]) - before[str(r["harness"])])  # type: ignore[arg-type]
        r["new_crash_files"] = new
        failed |= r["rc"] != 0 or bool(new)
        print(f"{r['harness']:14} {r['rc']:>3} {r['executions']:>10} {r['cov']:>6} {r['ft']:>7} {r['corpus']:>7} "
              f"{r['peak_rss_mb']:>6} {r['seconds']:>6}  {' '.join(new) or '-'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if failed:
        print("fuzz: FAILED (a crash, hang or out-of-memory; see the logs and fuzz/artifacts/)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
