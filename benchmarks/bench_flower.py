"""Benchmark: Flower's own options beside qsafe's, in one run on Flower's simulation engine.

Three ways to aggregate one training round of C clients x P float32 parameters:

- ``fedavg``: Flower's FedAvg, plaintext (the floor);
- ``secagg+``: Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``; masking, no encryption);
- ``qsafe-he``: qsafe's client mod + ``QsafeEncryptedAggregation`` (packed BFV, ML-DSA-signed updates; the key
  authority in-process, recomputing the sum before it decrypts), its context made for ``max_clients`` = the
  round's clients (the BFV moduli are sized to it); ``qsafe-he:K`` makes it for K (``qsafe-he:1024`` is the
  default of ``qsafe fl init``).

Per method: bytes uploaded per parameter per client (every message a client sends in the round: for SecAgg+ all
its protocol stages), client time (CPU seconds in the mods, i.e. what the method adds to the ClientApp's own
work, median over clients), server time (CPU seconds of the server thread while aggregating: SecAgg+'s whole
workflow, qsafe's verify + sum + key authority, FedAvg's aggregate), and round time (wall clock of the whole round
as the ServerApp sees it; the median of rounds 2.. is reported, the first warms Ray's actors up; server time is
the median of those rounds too).

    python benchmarks/bench_flower.py [--configs 10x1000000,20x131122] [--methods fedavg,secagg+,qsafe-he]
                                      [--rounds 2] [--json OUT]

The ClientApps send a fixed random update (no training), so the figures are the aggregation's own cost. Ray
runs one actor per core (2 here): C clients share 2 cores, as they would share a SuperNode machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOG = Path(os.environ.get("QSAFE_BENCH_LOG", tempfile.gettempdir())) / f"qsafe-bench-flower-{os.getpid()}.jsonl"


def _note(**fields: Any) -> None:
    with open(os.environ["QSAFE_BENCH_LOG_FILE"], "a") as handle:
        handle.write(json.dumps(fields) + "\n")


def _content_bytes(content: Any) -> int:
    total = 0
    for record in content.array_records.values():
        total += sum(len(a.data) for a in record.values())
    for record in list(content.config_records.values()) + list(content.metric_records.values()):
        total += int(record.count_bytes())
    return total


def _timing_mod(method: str) -> Any:
    """Outermost mod: CPU time of everything inside it minus the ClientApp's own, and the bytes it sends."""
    def mod(msg: Any, ctxt: Any, call_next: Any) -> Any:
        start = time.process_time()
        reply = call_next(msg, ctxt)
        spent = time.process_time() - start - float(ctxt.state.config_records.get("bench", {}).get("app", 0.0)
                                                    if "bench" in ctxt.state.config_records else 0.0)
        if "bench" in ctxt.state.config_records:
            del ctxt.state.config_records["bench"]
        rnd = int(msg.content.config_records[next(iter(msg.content.config_records))].get("server-round", -1)) \
            if msg.content.config_records else -1
        _note(kind="client", method=method, node=int(ctxt.node_id), stage=msg.metadata.message_type,
              round=rnd, cpu=spent, bytes=_content_bytes(reply.content) if not reply.has_error() else 0)
        return reply
    return mod


def _update(partition: int, params: int) -> np.ndarray:
    return np.random.default_rng(partition).uniform(-0.01, 0.01, params).astype(np.float32)


def _message_apps(method: str, clients: int, params: int, rounds: int) -> tuple[Any, Any]:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from qsafe_flower import KeyAuthority, QsafeEncryptedAggregation, make_qsafe_mod

    from qsafe.federated import HEContext
    from qsafe.federated_sim.clients import simulation_client_keys

    he = method.startswith("qsafe-he")
    max_clients = int(method.split(":")[1]) if ":" in method else clients
    secret = HEContext.generate(max_clients=max_clients) if he else None
    public_bytes = secret.public().public_bytes() if secret else b""
    def inner_mod(msg: Any, ctxt: Any, call_next: Any) -> Any:
        if not he:
            return call_next(msg, ctxt)
        part = int(ctxt.node_config["partition-id"])  # keys are made in the actor (they do not pickle)
        key = simulation_client_keys(0, part + 1)[part]
        return make_qsafe_mod(HEContext.from_bytes(public_bytes), key)(msg, ctxt, call_next)

    client_app = ClientApp(mods=[_timing_mod(method), inner_mod])

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        start = time.process_time()
        part = int(context.node_config["partition-id"])
        local = msg.content["arrays"]["w"].numpy() + _update(part, params)
        reply = Message(RecordDict({"arrays": ArrayRecord({"w": Array(local)}),
                                    "metrics": MetricRecord({"num-examples": 100})}), reply_to=msg)
        context.state["bench"] = ConfigRecord({"app": time.process_time() - start})
        return reply

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        base = FedAvg(fraction_evaluate=0.0, min_available_nodes=clients, min_train_nodes=clients)
        if he:
            assert secret is not None
            allow = [k.public_key() for k in simulation_client_keys(0, clients)]
            strategy: Any = QsafeEncryptedAggregation(base, context=secret.public(), allowlist=allow,
                                                      key_authority=KeyAuthority(secret, allow), min_clients=2)
        else:
            strategy = base
        inner = strategy.aggregate_train

        def timed(server_round: int, replies: Any) -> Any:
            start = time.thread_time()
            out = inner(server_round, replies)
            _note(kind="server", method=method, round=server_round, cpu=time.thread_time() - start)
            return out

        strategy.aggregate_train = timed

        def evaluate_fn(server_round: int, arrays: Any) -> None:
            _note(kind="round", method=method, round=server_round, t=time.time())

        strategy.start(grid=grid, initial_arrays=ArrayRecord({"w": Array(np.zeros(params, np.float32))}),
                       num_rounds=rounds, evaluate_fn=evaluate_fn)

    return server_app, client_app


def _secagg_apps(clients: int, params: int, rounds: int) -> tuple[Any, Any]:
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    class Client(NumPyClient):  # type: ignore[misc]
        def __init__(self, part: int) -> None:
            self.part = part

        def fit(self, parameters: Any, config: Any) -> Any:
            return [parameters[0] + _update(self.part, params)], 100, {}

    def client_fn(context: Any) -> Any:
        return Client(int(context.node_config["partition-id"])).to_client()

    client_app = ClientApp(client_fn=client_fn, mods=[_timing_mod("secagg+"), secaggplus_mod])
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Any) -> None:
        def evaluate_fn(server_round: int, parameters: Any, config: Any) -> None:
            _note(kind="round", method="secagg+", round=server_round, t=time.time())

        strategy = LegacyFedAvg(fraction_evaluate=0.0, min_fit_clients=clients, min_available_clients=clients,
                                evaluate_fn=evaluate_fn,
                                initial_parameters=ndarrays_to_parameters([np.zeros(params, np.float32)]))
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        # an odd number of shares (Flower requires it) of about log2(C) neighbours, as in SecAgg+'s paper
        shares = min(clients, 2 * int(np.ceil(np.log2(clients) / 2)) + 1)
        fit = SecAggPlusWorkflow(num_shares=shares, reconstruction_threshold=shares // 2 + 1, clipping_range=8.0)
        call = fit.__call__

        class Timed:
            def __call__(self, g: Any, c: Any) -> None:
                start = time.thread_time()
                call(g, c)
                _note(kind="server", method="secagg+", round=-1, cpu=time.thread_time() - start)

        DefaultWorkflow(fit_workflow=Timed())(grid, legacy)

    return server_app, client_app


def run_one(method: str, clients: int, params: int, rounds: int) -> dict[str, Any]:
    from flwr.simulation import run_simulation

    log = Path(tempfile.mkdtemp()) / "notes.jsonl"
    os.environ["QSAFE_BENCH_LOG_FILE"] = str(log)
    log.touch()
    apps = _secagg_apps(clients, params, rounds) if method == "secagg+" else _message_apps(method, clients, params,
                                                                                          rounds)
    run_simulation(server_app=apps[0], client_app=apps[1], num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    notes = [json.loads(line) for line in log.read_text().splitlines()]
    marks = {n["round"]: n["t"] for n in notes if n["kind"] == "round"}
    last = rounds
    client = [n for n in notes if n["kind"] == "client" and (n["round"] in (last, -1))]
    per_client_cpu: dict[int, float] = {}
    per_client_bytes: dict[int, int] = {}
    for n in client:  # SecAgg+ stages carry no round number: keep the last round's share of them
        per_client_cpu[n["node"]] = per_client_cpu.get(n["node"], 0.0) + n["cpu"]
        per_client_bytes[n["node"]] = per_client_bytes.get(n["node"], 0) + n["bytes"]
    if method == "secagg+":  # stages of all rounds were summed: divide by the rounds
        per_client_cpu = {k: v / rounds for k, v in per_client_cpu.items()}
        per_client_bytes = {k: v // rounds for k, v in per_client_bytes.items()}
    server = [n["cpu"] for n in notes if n["kind"] == "server"]
    server = server[1:] or server  # the first round warms up
    laps = [marks[r] - marks[r - 1] for r in range(2, rounds + 1) if r in marks and r - 1 in marks]
    if not per_client_bytes or statistics.median(per_client_bytes.values()) < params:
        raise RuntimeError(f"{method}: the round did not complete (clients uploaded {per_client_bytes}); see the log")
    return {"method": method, "clients": clients, "params": params,
            "bytes_per_param": statistics.median(per_client_bytes.values()) / params,
            "client_cpu_s": statistics.median(per_client_cpu.values()),
            "server_cpu_s": statistics.median(server),
            "round_s": statistics.median(laps) if laps else float("nan"), "rounds_timed": len(laps)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="10x1000000,20x131122", help="CLIENTSxPARAMS, comma-separated")
    parser.add_argument("--methods", default="fedavg,secagg+,qsafe-he")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)
    rows = []
    for spec in args.configs.split(","):
        clients, params = (int(x) for x in spec.split("x"))
        for method in args.methods.split(","):
            row = run_one(method, clients, params, args.rounds)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} (2 cores)\n")
    print("| clients x params | method | upload B/param | client CPU s | server CPU s | round s | round / SecAgg+ |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ref = next((r for r in rows if r["method"] == "secagg+" and r["clients"] == row["clients"]), None)
        ratio = row["round_s"] / ref["round_s"] if ref else float("nan")
        print(f"| {row['clients']} x {row['params']:,} | {row['method']} | {row['bytes_per_param']:.2f} | "
              f"{row['client_cpu_s']:.3f} | {row['server_cpu_s']:.3f} | {row['round_s']:.2f} | {ratio:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
