"""qsafe's SMS-spam backdoor scenario on Flower's simulation engine (Ray): the same clients, attack, defense and
seed as ``qsafe fl simulate``, so the two engines can be compared figure for figure.

Each virtual SuperNode is one scenario client (its ``partition-id``); it trains with
:func:`qsafe.federated_sim.simulation.client_update` (an honest update, or the attack's if compromised) and returns
``global + update`` in float64, so the server sees the update exactly. The ServerApp runs qsafe's defense as a
Flower strategy (:func:`~qsafe_flower.robust_strategy`) and evaluates accuracy and attack success centrally after
every round.

    python -m qsafe_flower.scenario --defense multi-krum --rounds 30 --seed 0     # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from qsafe.federated_sim.attacks import AttackSpec
from qsafe.federated_sim.simulation import Prepared, SimulationConfig, client_update, evaluate, prepare
from qsafe_flower.defenses import robust_strategy

__all__ = ["run_scenario", "scenario_apps"]

_PREPARED: dict[str, Prepared] = {}


def _prepared(config: SimulationConfig) -> Prepared:
    """The scenario's data and model, prepared once per process (each Ray actor keeps its own)."""
    key = repr(config)
    if key not in _PREPARED:
        import torch

        torch.set_num_threads(1)  # one intra-op thread, as qsafe fl simulate uses
        _PREPARED[key] = prepare(config)
    return _PREPARED[key]


def scenario_apps(config: SimulationConfig, results: dict[str, Any]) -> tuple[ServerApp, ClientApp]:
    """The ServerApp and ClientApp of one scenario; the ServerApp fills ``results`` (per-round metrics).

    Args:
        config: the scenario (defense, defense_params, attackers, rounds, seed, ...).
        results: receives ``rounds``: a list of ``{round, accuracy, asr, raw_asr}``.
    """
    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        prep = _prepared(config)
        client = int(context.node_config["partition-id"])
        global_params = msg.content.array_records["arrays"]["params"].numpy()
        rnd = int(msg.content["config"]["server-round"])  # type: ignore[arg-type]
        update = client_update(config, prep, client, global_params, rnd)
        local = global_params.astype(np.float64) + update.delta.astype(np.float64)
        return Message(RecordDict({"arrays": ArrayRecord({"params": Array(local)}),
                                   "metrics": MetricRecord({"num-examples": update.num_examples,
                                                            "qsafe-client": client})}), reply_to=msg)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        prep = _prepared(config)
        strategy = robust_strategy(config.defense, seed=[config.seed, 1], fedavg={
            "fraction_train": 1.0, "fraction_evaluate": 0.0, "min_available_nodes": config.clients,
            "min_train_nodes": config.clients}, **config.defense_params)
        rounds: list[dict[str, float]] = []

        def central(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if server_round == 0:
                return None
            accuracy, asr, raw = evaluate(prep, arrays["params"].numpy())
            rounds.append({"round": server_round, "accuracy": accuracy, "asr": asr, "raw_asr": raw})
            return MetricRecord({"accuracy": accuracy, "asr": asr, "raw_asr": raw})

        strategy.start(grid=grid, initial_arrays=ArrayRecord({"params": Array(prep.initial.copy())}),
                       num_rounds=config.rounds, train_config=ConfigRecord(), evaluate_fn=central)
        results["rounds"] = rounds

    return server_app, client_app


def run_scenario(config: SimulationConfig) -> dict[str, Any]:
    """Run the scenario on Flower's simulation engine; return the per-round and final metrics.

    Raises:
        RuntimeError: the simulation produced no result (Flower logs why).
    """
    from flwr.simulation import run_simulation

    config.check()
    results: dict[str, Any] = {}
    server_app, client_app = scenario_apps(config, results)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=config.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": max(1, min(2, os.cpu_count() or 1)),
                                                 "include_dashboard": False}})
    if not results.get("rounds"):
        raise RuntimeError("the Flower simulation produced no result; see Flower's log above")
    final = results["rounds"][-1]
    return {"defense": config.defense, "rounds": results["rounds"], "accuracy": final["accuracy"],
            "asr": final["asr"], "raw_asr": final["raw_asr"]}


def main(argv: list[str] | None = None) -> int:
    """CLI: the scenario's options (a subset of ``qsafe fl simulate``'s), JSON on stdout."""
    p = argparse.ArgumentParser(prog="python -m qsafe_flower.scenario", description=__doc__.split("\n\n")[0])
    p.add_argument("--defense", default="none")
    p.add_argument("--attackers", type=int, default=2)
    p.add_argument("--attack", default="replace")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--krum-f", type=int, default=4)
    args = p.parse_args(argv)
    params = {"f": args.krum_f} if args.defense in ("krum", "multi-krum") else {}
    config = replace(SimulationConfig(), defense=args.defense, attackers=args.attackers,
                     attack=AttackSpec(kind=args.attack), rounds=args.rounds, clients=args.clients, seed=args.seed,
                     defense_params=params)
    json.dump(run_scenario(config), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
