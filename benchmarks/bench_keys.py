"""Signing-key costs per algorithm, with dilithium-py (pure-Python FIPS 204) as the peer, in one run.

Prints medians (ms) of keygen, sign and verify over a DSSE-PAE-sized message, the signature and public key sizes,
and the cost of opening a passphrase-protected key file at the default scrypt work factor 18.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_keys.py [--repeat N]

Numbers taken while other processes load the CPU are noisy; the ratios measured in the same run are the figures
to compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qsafe import keys
from qsafe._labels import MLDSA_CONTEXT_MODEL_BUNDLE

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 1024 " + bytes(1024)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def qsafe_rows(repeat: int) -> list[tuple[str, float, float, float, int, int]]:
    rows = []
    for algorithm in keys.SIGNATURE_ALGORITHMS:
        private = keys.generate(algorithm)
        public = private.public_key()
        signature = private.sign(MESSAGE, MLDSA_CONTEXT_MODEL_BUNDLE)
        rows.append((
            algorithm,
            median_ms(lambda a=algorithm: keys.generate(a), repeat),
            median_ms(lambda p=private: p.sign(MESSAGE, MLDSA_CONTEXT_MODEL_BUNDLE), repeat),
            median_ms(lambda k=public, s=signature: k.verify(s, MESSAGE, MLDSA_CONTEXT_MODEL_BUNDLE), repeat),
            len(signature),
            len(public.to_der()),
        ))
    return rows


def peer_row(repeat: int) -> tuple[float, float, float]:
    from dilithium_py.ml_dsa import ML_DSA_65

    pk, sk = ML_DSA_65.keygen()
    sig = ML_DSA_65.sign(sk, MESSAGE, MLDSA_CONTEXT_MODEL_BUNDLE)
    n = max(3, repeat // 10)  # pure Python: fewer rounds
    return (median_ms(ML_DSA_65.keygen, n),
            median_ms(lambda: ML_DSA_65.sign(sk, MESSAGE, MLDSA_CONTEXT_MODEL_BUNDLE), n),
            median_ms(lambda: ML_DSA_65.verify(pk, MESSAGE, sig, MLDSA_CONTEXT_MODEL_BUNDLE), n))


def protected_load_ms(repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        keys.write_key_pair(keys.generate(), Path(tmp) / "k", b"benchmark passphrase")
        return median_ms(lambda: keys.load_private_key(Path(tmp) / "k.key", b"benchmark passphrase"),
                         max(3, repeat // 20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rows = qsafe_rows(args.repeat)
    print(f"{'algorithm':<20}{'keygen ms':>11}{'sign ms':>10}{'verify ms':>11}{'sig B':>8}{'spki B':>8}")
    for name, kg, sg, vf, sig_len, pk_len in rows:
        print(f"{name:<20}{kg:>11.3f}{sg:>10.3f}{vf:>11.3f}{sig_len:>8}{pk_len:>8}")
    kg, sg, vf = peer_row(args.repeat)
    print(f"{'dilithium-py 65':<20}{kg:>11.3f}{sg:>10.3f}{vf:>11.3f}")
    ours = next(r for r in rows if r[0] == "ml-dsa-65")
    print(f"ratio qsafe/dilithium-py (ML-DSA-65): keygen {ours[1] / kg:.4f}  sign {ours[2] / sg:.4f}  "
          f"verify {ours[3] / vf:.4f}")
    composite = next(r for r in rows if r[0] == "ml-dsa-65-ed25519")
    print(f"ratio composite/ml-dsa-65: sign {composite[2] / ours[2]:.2f}  verify {composite[3] / ours[3]:.2f}")
    print(f"open a protected key (age scrypt, work factor 18): {protected_load_ms(args.repeat):.0f} ms median")


if __name__ == "__main__":
    main()
