"""Demo step: one encrypted federated round with three signed clients, through the real ``qsafe fl`` commands.

The key authority makes the HE contexts (secret one passphrase-protected), three clients encrypt and sign their
updates, the aggregator sums them with public material only (and refuses a replayed copy), and the key authority
decrypts the average, which must match the plaintext average within the documented error bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _cli import qsafe  # examples/demo/_cli.py: one runner for every step

TITLE = "Encrypted federated round: three signed clients, homomorphic sum, replay refused"


def _qsafe(*args: object, expect: int = 0) -> str:
    return qsafe(*args, expect=expect).stdout


def run(workdir: Path) -> None:
    from safetensors.numpy import load_file, save_file

    d = workdir / "federated"
    (d / "clients").mkdir(parents=True)
    (d / "pw").write_text("demo passphrase\n")
    fingerprint = _qsafe("fl", "init", "--out", d / "ka", "--passphrase-file", d / "pw").split()[0]
    print(f"  key authority: public context {fingerprint[:23]}…, secret context passphrase-protected")
    rng = np.random.default_rng(2026)
    updates = []
    for i in range(3):
        _qsafe("keygen", "--out", d / "clients" / f"client{i}", "--passphrase-file", d / "pw")
        update = {"fc.weight": rng.normal(0, 0.05, (63, 128)).clip(-1, 1).astype(np.float32),
                  "fc.bias": rng.normal(0, 0.05, 64).clip(-1, 1).astype(np.float32)}
        save_file(update, str(d / f"update{i}.safetensors"))
        updates.append(update)
        report = json.loads(_qsafe("fl", "encrypt", d / f"update{i}.safetensors", "--context", d / "ka" / "public.ctx",
                                   "--key", d / "clients" / f"client{i}.key", "--passphrase-file", d / "pw",
                                   "--round", 1, "-o", d / f"update{i}.qfl", "--json"))
        print(f"  client {i}: {report['values']} values -> {report['bytes']} bytes "
              f"({report['bytes_per_value']:.2f} B/value), signed by {report['client_key_id'][:23]}…")
    qfls = [d / f"update{i}.qfl" for i in range(3)]
    report = json.loads(_qsafe("fl", "aggregate", *qfls, qfls[0], "--context", d / "ka" / "public.ctx",
                               "--clients", d / "clients", "--round", 1, "-o", d / "agg.qfl", "--json", expect=16))
    if report["count"] != 3 or len(report["refused"]) != 1 or "replay" not in report["refused"][0]["reason"]:
        raise RuntimeError(f"unexpected aggregation report: {report}")
    print(f"  aggregator: summed {report['count']} updates without the secret; refused the replayed copy "
          f"({report['refused'][0]['reason'].split(':')[0]}, exit 16)")
    report = json.loads(_qsafe("fl", "decrypt", d / "agg.qfl", "--secret", d / "ka" / "secret.ctx",
                               "--passphrase-file", d / "pw", "--recompute-from", d, "--clients", d / "clients",
                               "-o", d / "average.safetensors", "--json"))
    if not report["recomputed"]:
        raise RuntimeError("the key authority did not recompute the aggregate")
    average = load_file(str(d / "average.safetensors"))
    worst = 0.0
    for name, tensor in updates[0].items():
        expected = np.mean([u[name].astype(np.float64) for u in updates], axis=0)
        if average[name].dtype != tensor.dtype or average[name].shape != tensor.shape:
            raise RuntimeError(f"{name}: dtype/shape changed")
        worst = max(worst, float(np.abs(average[name] - expected).max()))
    if worst > report["error_bound"] + 1e-7:  # + float32 rounding of the output
        raise RuntimeError(f"average off by {worst}, bound {report['error_bound']}")
    print(f"  key authority: re-added the 3 signed updates, matched the aggregate, decrypted the average; max error {worst:.2e} "
          f"<= bound {report['error_bound']:.2e} (clip / 2^18)")
