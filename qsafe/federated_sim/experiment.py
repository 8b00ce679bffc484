"""What ``qsafe fl simulate`` runs: scenarios, optional audit trail and encryption, JSON output.

The CLI parses options and calls :func:`run`; this module builds the configs, hooks the audit trail into the
scenario run and writes the outputs atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qsafe._io import atomic_output
from qsafe.errors import KeyFileError, UsageError
from qsafe.federated.audit import AuditWriter, update_digest
from qsafe.federated.defenses import ClientUpdate
from qsafe.federated.defenses.base import AggregateResult
from qsafe.federated_sim import scenario as sc
from qsafe.federated_sim.attacks import AttackSpec
from qsafe.federated_sim.clients import simulation_client_keys
from qsafe.federated_sim.report import Report, matrix_markdown, plot_report, run_report
from qsafe.federated_sim.simulation import RoundProgress, SimulationConfig, simulate
from qsafe.keys import PrivateKey, generate, load_private_key

__all__ = ["base_config", "load_signer", "matrix_markdown", "plot_report", "report_json_text", "run", "write_json"]


def base_config(*, attack: str = "replace", boost: float | None = None, seed: int = 0, rounds: int = 30,
                clients: int = 20, trigger: str | None = None, partition: str = "iid",
                alpha: float = 0.5) -> SimulationConfig:
    """The scenario with the given knobs (defense and attackers are set per run).

    Raises:
        UsageError: unknown attack or impossible values.
    """
    # attackers=0: the base is checked (and the data prepared) before each run's count is set; the default 2
    # refused `--clients 4 --attackers 1`
    return SimulationConfig(attack=AttackSpec(kind=attack, boost=boost), seed=seed, rounds=rounds, clients=clients,
                            trigger=trigger or sc.DEFAULT_TRIGGER, partition=partition, alpha=alpha, attackers=0)


def load_signer(path: Path, passphrase: Callable[[], bytes]) -> PrivateKey:
    """Load the aggregator's signing key; ``passphrase`` is asked only for a protected key file.

    Raises:
        KeyFileError: unreadable key, or not a post-quantum (ML-DSA) key.
        WrongPassphraseError: the passphrase does not open it.
    """
    key = load_private_key(path, passphrase)  # a public key is named as one; the passphrase only when protected
    if not key.public_key().post_quantum:
        raise KeyFileError(f"{key.algorithm} is not post-quantum: audit round heads are signed with ML-DSA",
                           hint="make the aggregator key with qsafe keygen (ML-DSA-65 by default)")
    return key


def _audit_hook(writer: AuditWriter, keys: list[PrivateKey]) -> Callable[..., None]:
    key_ids = [k.public_key().key_id for k in keys]

    def on_round(rnd: int, updates: list[ClientUpdate], result: AggregateResult, entries: list[dict[str, Any]]) -> None:
        records = []
        for update, decision, entry in zip(updates, result.decisions, entries):
            records.append({"client": update.client, "key_id": key_ids[update.client], **entry,
                            "decision": decision.decision, "weight": round(decision.weight, 9),
                            "note": decision.note})
        writer.round(rnd, records, update_digest(result.delta))
    return on_round


@contextlib.contextmanager
def _audit(config: SimulationConfig, log: Path | None, signer: PrivateKey | None) -> Iterator[tuple[Callable[..., None] | None, str | None]]:
    if log is None:
        yield None, None
        return
    pub_path = None
    if signer is None:  # an ephemeral aggregator key; its public half goes beside the log
        signer = generate()
        pub_path = log.with_name(log.name + ".pub")
    scenario = {k: v for k, v in dataclasses.asdict(config).items() if k != "model"}
    with atomic_output(log) as stream:
        writer = AuditWriter(stream, signer, json.loads(json.dumps(scenario, default=str)))
        yield _audit_hook(writer, simulation_client_keys(config.seed, config.clients)), str(pub_path or "")
    if pub_path is not None:
        with atomic_output(pub_path) as handle:
            handle.write(signer.public_key().to_pem())


def run(base: SimulationConfig, defenses: Sequence[str], attacker_counts: Sequence[int],
        params: dict[str, dict[str, Any]], *, encrypt: bool = False, audit_log: Path | None = None,
        signer: PrivateKey | None = None, reference: bool = True, progress: RoundProgress | None = None) -> Report:
    """Run every (defense, attackers) scenario; with ``audit_log`` (one scenario only) write its audit trail.

    Args:
        base: the scenario knobs.
        defenses: defense names.
        attacker_counts: attacker counts.
        params: per-defense parameters.
        encrypt: aggregate encrypted updates (see :mod:`qsafe.federated_sim.encrypted_sim`).
        audit_log: where to write the audit trail.
        signer: the aggregator's key (default: a fresh one, public key written to ``LOG.pub``).
        reference: also run attack-free FedAvg.
        progress: called with 1 per round.

    Returns:
        The report; ``audit_public_key`` names the public key file when one was written.
    """
    if encrypt:
        from qsafe.federated.defenses import blind_defense_names

        runs_blind = blind_defense_names()
        blind = [d for d in defenses if d not in runs_blind]
        if blind:
            raise UsageError(f"--encrypt supports the defenses {', '.join(runs_blind)}; "
                             f"{', '.join(blind)} need to read individual updates",
                             hint="see docs/federated_backdoor.md for which defenses can run blind and how")
    config = dataclasses.replace(base, defense=defenses[0], attackers=attacker_counts[0],
                                 defense_params=params.get(defenses[0], {}))
    with _audit(config, audit_log, signer) as (hook, pub):
        simulate_one: Callable[..., Any] = simulate
        if encrypt:
            from qsafe.federated_sim.encrypted_sim import encrypted_simulate

            simulate_one = encrypted_simulate
        if hook is not None:
            inner = simulate_one
            simulate_one = lambda cfg, **kw: inner(cfg, on_round=hook, **kw)
        report = run_report(base, defenses, attacker_counts, params=params, reference=reference,
                            simulate_one=simulate_one, progress=progress)
    if audit_log is not None:
        report = dataclasses.replace(report, audit_public_key=pub or "(the key given with --audit-key)")
    return report


def report_json_text(report: Report) -> str:
    """The report as JSON text (per-round and final accuracy, ASR, raw ASR): what :func:`write_json` writes."""
    return json.dumps(report.to_json(), indent=2, sort_keys=True, default=_json_default)


def write_json(report: Report, path: Path) -> None:
    """Write the report's JSON atomically (per-round and final accuracy, ASR, raw ASR)."""
    text = report_json_text(report)
    with atomic_output(path) as handle:
        handle.write(text.encode("utf-8") + b"\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
