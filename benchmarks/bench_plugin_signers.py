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
import functools
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


class Case:
    """One algorithm's three operations, timed round-robin with the others (load drift hits every row alike)."""

    def __init__(self, name: str, generate: Callable[[], Any], rounds: int) -> None:
        self.name, self.generate, self.rounds = name, generate, rounds
        self.private = generate()
        self.public = self.private.public_key() if hasattr(self.private, "public_key") else self.private.public()
        self.signature = self.private.sign(MESSAGE, CONTEXT)
        self.times: dict[str, list[float]] = {"keygen": [], "sign": [], "verify": []}

    def run_once(self) -> None:
        for op, fn in (("keygen", self.generate), ("sign", lambda: self.private.sign(MESSAGE, CONTEXT)),
                       ("verify", lambda: self.public.verify(self.signature, MESSAGE, CONTEXT))):
            start = time.perf_counter()
            fn()
            self.times[op].append((time.perf_counter() - start) * 1000)

    def row(self) -> dict[str, Any]:
        der = self.public.to_der() if hasattr(self.public, "to_der") else self.public.spki_der()
        return {"algorithm": self.name, **{f"{op}_ms": statistics.median(t) for op, t in self.times.items()},
                "rounds": len(self.times["sign"]), "signature_bytes": len(self.signature),
                "public_key_bytes": len(der)}


class PqcryptoCase(Case):
    """SLH-DSA through pqcrypto 1.0.0 (Rust): the peer implementation, same message and context."""

    def __init__(self, name: str, rounds: int) -> None:
        import importlib

        mod: Any = importlib.import_module("pqcrypto.sign." + name.replace("-", "_"))
        self.mod, self.name, self.rounds = mod, f"{name} (pqcrypto peer)", rounds
        self.pk, self.sk = mod.keygen()
        self.signature = mod.sign(self.sk, MESSAGE, context=CONTEXT)
        self.times = {"keygen": [], "sign": [], "verify": []}

    def run_once(self) -> None:
        mod = self.mod
        for op, fn in (("keygen", mod.keygen), ("sign", lambda: mod.sign(self.sk, MESSAGE, context=CONTEXT)),
                       ("verify", lambda: mod.verify(self.pk, MESSAGE, self.signature, context=CONTEXT))):
            start = time.perf_counter()
            fn()
            self.times[op].append((time.perf_counter() - start) * 1000)

    def row(self) -> dict[str, Any]:
        return {"algorithm": self.name, **{f"{op}_ms": statistics.median(t) for op, t in self.times.items()},
                "rounds": len(self.times["sign"]), "signature_bytes": len(self.signature),
                "public_key_bytes": len(self.pk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    cases: list[Case] = []
    for name, divisor in ALGORITHMS:
        n = max(3, args.repeat // divisor)
        cases.append(Case(name, functools.partial(keys.generate, name), n))
        if name == "ml-dsa-65":
            from qsafe_liboqs.mldsa import ML_DSA_65

            cases.append(Case("ml-dsa-65 (liboqs peer)", ML_DSA_65.generate, n))
        if name in ("slh-dsa-sha2-128f", "slh-dsa-sha2-128s", "slh-dsa-shake-256s"):
            cases.append(PqcryptoCase(name, n))
    for round_ in range(max(c.rounds for c in cases)):  # round-robin: every row sees the same load drift
        for case in cases:
            if round_ < case.rounds:
                case.run_once()
    rows = [c.row() for c in cases]
    base = rows[0]
    for r in rows:
        for k in ("keygen", "sign", "verify"):
            r[f"{k}_x"] = r[f"{k}_ms"] / base[f"{k}_ms"]
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"load_average": load, "repeat": args.repeat, "rows": rows}, indent=2))
        return
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; medians over {args.repeat} rounds (fewer for slow "
          "rows), all rows round-robin; x = ratio to ML-DSA-65 (cryptography) in this run")
    print(f"{'algorithm':36} {'keygen ms':>10} {'x':>7} {'sign ms':>10} {'x':>7} {'verify ms':>10} {'x':>7} "
          f"{'sig B':>7} {'pk B':>6}")
    for r in rows:
        print(f"{r['algorithm']:36} {r['keygen_ms']:10.2f} {r['keygen_x']:7.1f} {r['sign_ms']:10.2f} "
              f"{r['sign_x']:7.1f} {r['verify_ms']:10.3f} {r['verify_x']:7.1f} {r['signature_bytes']:7d} "
              f"{r['public_key_bytes']:6d}")


if __name__ == "__main__":
    main()
