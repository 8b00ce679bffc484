"""The ServerApp: Flower's FedAvg, wrapped by qsafe (signatures, allowlist, replays, blind Multi-Krum, encrypted
sum, decryption by the separate key authority, signed audit trail)."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from qsafe_flower import AuditTrail, QsafeEncryptedAggregation, RemoteKeyAuthority

from flower_encrypted.task import initial_arrays
from qsafe.federated import HEContext
from qsafe.keys import load_private_key, load_public_keys

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    base = Path(str(cfg.get("base-dir", ".")))
    public = HEContext.load(base / str(cfg["context"]))
    defense = str(cfg["defense"])
    audit = AuditTrail(base / str(cfg["audit-log"]), load_private_key(base / str(cfg["audit-key"])),
                       {"app": "flower_encrypted", "defense": defense, "context": public.fingerprint,
                        "run": str(context.run_id)})
    try:
        authority = RemoteKeyAuthority(str(cfg["ka-address"]), ca=str(base / str(cfg["ka-ca"])),
                                       certfile=str(base / str(cfg["ka-cert"])), keyfile=str(base / str(cfg["ka-key"])))
        strategy = QsafeEncryptedAggregation(
            FedAvg(min_available_nodes=int(cfg["min-nodes"]), min_train_nodes=int(cfg["min-nodes"]),
                   min_evaluate_nodes=2),
            context=public, allowlist=load_public_keys(base / str(cfg["clients"])), key_authority=authority,
            defense=defense, defense_params={"f": int(cfg["krum-f"]), "m": int(cfg["krum-m"])}, audit=audit,
            min_clients=int(cfg["min-clients"]), run=str(context.run_id))
        strategy.start(grid=grid, initial_arrays=ArrayRecord({k: Array(v) for k, v in initial_arrays().items()}),
                       num_rounds=int(cfg["num-server-rounds"]), timeout=float(cfg["round-timeout"]),
                       train_config=ConfigRecord(), evaluate_config=ConfigRecord())
    finally:
        audit.close()
