"""Cost of running the backdoor scenario's defenses blind (encrypted updates) against the same rounds in the clear.

Runs, in one process and on the same prepared data (20 clients, default model of 131,122 parameters):
plaintext FedAvg, plaintext norm-bound (fixed bound 0.5), encrypted FedAvg (packed BFV) and the encrypted norm
check (CKKS with norm keys; only norms are decrypted). Prints the median seconds per round, the per-phase split
of the encrypted runs, bytes per update, and the ratios to the plaintext run. Wall-clock numbers on a shared
machine are noisy: read the ratios, which are measured in the same run.

    PYTHONPATH=. python benchmarks/bench_backdoor.py [--rounds 2] [--clients 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

from qsafe.federated_sim.encrypted_sim import encrypted_simulate
from qsafe.federated_sim.simulation import SimulationConfig, prepare, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    base = SimulationConfig(rounds=args.rounds, clients=args.clients)
    prep = prepare(base)
    rows = []
    for label, defense, encrypted in [("plaintext FedAvg", "none", False), ("plaintext norm-bound", "norm-bound", False),
                                      ("encrypted FedAvg (BFV)", "none", True),
                                      ("encrypted norm check (CKKS)", "norm-bound", True)]:
        params = {"bound": 0.5} if defense == "norm-bound" else {}
        config = dataclasses.replace(base, defense=defense, defense_params=params)
        run = (encrypted_simulate if encrypted else simulate)(config, prep=prep, reference=False)
        median = statistics.median(m.seconds for m in run.run.rounds)
        rows.append((label, median, run.extra.get("encrypted")))
        print(f"{label:30s} {median:8.2f} s/round  accuracy {run.run.final.accuracy:.4f}  ASR {run.run.final.asr:.3f}",
              flush=True)
    plain = rows[0][1]
    print(f"\nparameters per update: {prep.model.size:,}; clients: {args.clients}; rounds: {args.rounds}")
    for label, median, cost in rows:
        line = f"{label:30s} x{median / plain:7.1f} of plaintext FedAvg"
        if cost:
            line += f"; {cost['bytes_per_update'] / prep.model.size:.1f} bytes/parameter; " + ", ".join(
                f"{k} {v:.2f} s" for k, v in cost["seconds_per_round"].items())
        print(line)


if __name__ == "__main__":
    main()
