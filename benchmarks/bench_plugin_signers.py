"""Sign/verify costs of the qsafe-liboqs algorithms beside ML-DSA-65, in one run, through qsafe's keys API.

Prints, per algorithm, the medians (ms) of keygen, sign and verify over a DSSE-PAE-sized message with qsafe's
bundle context, the sizes, and each figure as a ratio to ML-DSA-65 (cryptography) measured in the same run. Two
peers sit beside the plugin: ML-DSA-65 through liboqs, and SLH-DSA through pqcrypto 1.0.0 (Rust), so that a
slow row can be told apart from a slow implementation.

    OQS_INSTALL_PATH=build/oqs-prefix nice -n 10 .venv/bin/python benchmarks/bench_plugin_signers.py [--repeat N]

Needs the plugin (make plugins). Numbers taken while other processes load the CPU are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from qsafe import keys
from qsafe._labels import MLDSA_CONTEXT_MODEL_BUNDLE as CONTEXT

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 1024 " + bytes(1024)
# (algorithm, repeat divisor): SLH-DSA 's' sets sign in seconds; fewer rounds there.
ALGORITHMS = [("ml-dsa-65", 1), ("falcon-512", 1), ("falcon-1024", 1), ("slh-dsa-sha2-128f", 4),
              ("slh-dsa-shake-128f", 4), ("slh-dsa-sha2-128s", 10), ("slh-dsa-shake-256s", 10),
              ("ml-dsa-65-slh-dsa-sha2-128s", 10)]


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(max(3, repeat)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def row(name: str, private: Any, generate: Callable[[], object], repeat: int) -> dict[str, Any]:
    public = private.public_key() if hasattr(private, "public_key") else private.public()
    signature = private.sign(MESSAGE, CONTEXT)
    return {
        "algorithm": name,
        "keygen_ms": median_ms(generate, repeat),
        "sign_ms": median_ms(lambda: private.sign(MESSAGE, CONTEXT), repeat),
        "verify_ms": median_ms(lambda: public.verify(signature, MESSAGE, CONTEXT), repeat * 4),
        "signature_bytes": len(signature),
        "public_key_bytes": len(public.to_der() if hasattr(public, "to_der") else public.spki_der()),
    }


def pqcrypto_row(name: str, repeat: int) -> dict[str, Any]:
    import importlib

    mod: Any = importlib.import_module("pqcrypto.sign." + name.replace("-", "_"))
    pk, sk = mod.keygen()
    signature = mod.sign(sk, MESSAGE, context=CONTEXT)
    return {"algorithm": f"{name} (pqcrypto peer)", "keygen_ms": median_ms(mod.keygen, repeat),
            "sign_ms": median_ms(lambda: mod.sign(sk, MESSAGE, context=CONTEXT), repeat),
            "verify_ms": median_ms(lambda: mod.verify(pk, MESSAGE, signature, context=CONTEXT), repeat * 4),
            "signature_bytes": len(signature), "public_key_bytes": len(pk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = []
    for name, divisor in ALGORITHMS:
        n = max(3, args.repeat // divisor)
        rows.append(row(name, keys.generate(name), lambda a=name: keys.generate(a), n))
        if name == "ml-dsa-65":
            from qsafe_liboqs.mldsa import ML_DSA_65

            rows.append(row("ml-dsa-65 (liboqs peer)", ML_DSA_65.generate(), ML_DSA_65.generate, n))
        if name in ("slh-dsa-sha2-128f", "slh-dsa-sha2-128s", "slh-dsa-shake-256s"):
            rows.append(pqcrypto_row(name, n))
    base = rows[0]
    for r in rows:
        for k in ("keygen", "sign", "verify"):
            r[f"{k}_x"] = r[f"{k}_ms"] / base[f"{k}_ms"]
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"load_average": load, "repeat": args.repeat, "rows": rows}, indent=2))
        return
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; medians over {args.repeat} (fewer for slow rows); "
          "x = ratio to ML-DSA-65 (cryptography) in this run")
    print(f"{'algorithm':36} {'keygen ms':>10} {'x':>7} {'sign ms':>10} {'x':>7} {'verify ms':>10} {'x':>7} "
          f"{'sig B':>7} {'pk B':>6}")
    for r in rows:
        print(f"{r['algorithm']:36} {r['keygen_ms']:10.2f} {r['keygen_x']:7.1f} {r['sign_ms']:10.2f} "
              f"{r['sign_x']:7.1f} {r['verify_ms']:10.3f} {r['verify_x']:7.1f} {r['signature_bytes']:7d} "
              f"{r['public_key_bytes']:6d}")


if __name__ == "__main__":
    main()
