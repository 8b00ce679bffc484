"""The backdoor scenario with encrypted updates: the aggregator never reads a client's update.

Roles, as in :mod:`qsafe.federated`: a key authority holds the secret HE context; each client encrypts and signs
its update with :func:`~qsafe.federated.encrypt_update`; the aggregator checks and sums with public material only
(:func:`~qsafe.federated.aggregate`); the key authority decrypts the aggregate.

Defenses that run blind say how through their :meth:`~qsafe.federated.defenses.Strategy.blind` (a
:class:`~qsafe.federated.defenses.BlindAggregation`; any installed defense may provide one, see
:func:`~qsafe.federated.defenses.blind_defense_names`). The built-ins that do (docs/federated_backdoor.md has the
full table):

- ``none``: FedAvg as an encrypted sum (packed BFV); unweighted mean of the accepted updates.
- ``norm-bound``: every client is told the bound ``C`` and clips to it before encrypting; the aggregator computes
  each update's *encrypted* squared norm from its ciphertexts (CKKS with relinearization and Galois keys), the key
  authority decrypts **only that number**, and updates above ``C`` are left out of the sum. An update is never
  decrypted alone; the norm is computed from the very ciphertexts that are summed, so a client cannot show one
  update to the check and another to the sum.
- ``dp``: the same norm check, then the key authority adds Gaussian noise ``sigma * C / n`` to the decrypted mean
  (central DP with the key authority trusted for the noise).

Every value must also lie within the HE context's per-value clip range; a client whose update does not fit is
refused at encryption, so clients (honest or not) clamp to it first.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from qsafe.errors import UsageError
from qsafe.federated.defenses import BlindAggregation, ClientUpdate, Strategy, blind_defense_names, make_strategy
from qsafe.federated.defenses.base import ACCEPTED, BLIND_DEFAULT_BOUND, REJECTED, AggregateResult, ClientDecision
from qsafe.federated_sim.clients import simulation_client_keys
from qsafe.federated_sim.simulation import (
    Aggregator,
    Prepared,
    SimulationConfig,
    SimulationResult,
    attackers_of,
    simulate,
)

__all__ = ["DEFAULT_ENCRYPTED_BOUND", "blind_plan", "encrypted_simulate"]

DEFAULT_ENCRYPTED_BOUND = BLIND_DEFAULT_BOUND
VALUE_CLIP = 1.0  # per-value range of the HE context: |x| <= 1
# CKKS computes the squared norm approximately (measured: ~3e-4 relative on the norm of 131k values); a client that clipped to exactly C
# must not be refused for the noise, so the check allows this relative slack.
_NORM_SLACK = 1e-2


class _Costs:
    """Seconds and bytes per phase, summed over rounds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.bytes_per_update = 0
        self.rounds = 0

    def timed(self, phase: str, func: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = func()
        self.seconds[phase] += time.perf_counter() - start
        return value

    def to_json(self, clients: int) -> dict[str, Any]:
        per_round = {k: round(v / max(self.rounds, 1), 4) for k, v in self.seconds.items()}
        return {"rounds": self.rounds, "bytes_per_update": self.bytes_per_update,
                "seconds_per_round": per_round,
                "client_seconds_per_update": round(per_round.get("client encrypt+sign", 0.0) / clients, 4)}


def blind_plan(config: SimulationConfig) -> tuple[BlindAggregation, SimulationConfig]:
    """The scenario's defense as it runs blind, and the scenario with the parameters that fixes.

    Raises:
        UsageError: the defense needs to read individual updates (its ``blind()`` is None).
    """
    plan = make_strategy(config.defense, **config.defense_params).blind()
    if plan is None:
        raise UsageError(f"--encrypt supports the defenses {', '.join(blind_defense_names())}; {config.defense!r} "
                         "needs to read individual updates",
                         hint="see docs/federated_backdoor.md for which defenses can run blind and how")
    if plan.fixed_params:  # e.g. an adaptive norm bound, fixed and published to the clients
        config = dataclasses.replace(config, defense_params={**config.defense_params, **plan.fixed_params})
    return plan, config


def _client_side(update: ClientUpdate, bound: float | None, deviates: bool) -> np.ndarray:
    """What a client encrypts: protocol clients clip to the norm bound; everyone clamps to the HE value range."""
    delta = update.delta.astype(np.float64)
    norm = float(np.linalg.norm(delta))
    if bound is not None and not deviates and norm > bound:
        delta *= bound / norm
    return np.clip(delta, -VALUE_CLIP, VALUE_CLIP).astype(np.float32)


class _EncryptedAggregator:
    def __init__(self, config: SimulationConfig, strategy: Strategy, costs: _Costs) -> None:
        from qsafe.federated import HEContext

        plan = strategy.blind()
        if plan is None:  # encrypted_simulate checked it; a strategy whose blind() changed is a bug
            raise UsageError(f"defense {strategy.name!r} cannot run on encrypted updates")
        self.config, self.costs, self.plan = config, costs, plan
        self.bound = plan.norm_bound
        self.noise = plan.noise_multiplier
        scheme = "bfv-packed" if self.bound is None else "ckks"
        self.secret = costs.timed("key authority setup", lambda: HEContext.generate(
            scheme, clip=VALUE_CLIP, max_clients=max(config.clients, 2), norm_keys=self.bound is not None))
        self.public = self.secret.public()
        self.keys = simulation_client_keys(config.seed, config.clients)
        self.allowlist = [k.public_key() for k in self.keys]
        attackers = attackers_of(config)
        # a model-replacement attacker deviates from the protocol (does not clip); the others follow it
        self.deviates = set(attackers) if config.attack.kind == "replace" else set()

    def _norm(self, encrypted: Any) -> float:
        from qsafe.federated import decrypt_squared_norm, encrypted_squared_norm

        enc = self.costs.timed("aggregator encrypted norm", lambda: encrypted_squared_norm(encrypted, self.public))
        squared = self.costs.timed("key authority norm decrypt", lambda: decrypt_squared_norm(enc, self.secret))
        return float(np.sqrt(max(squared, 0.0)))

    def __call__(self, rnd: int, updates: list[ClientUpdate], rng: np.random.Generator) -> tuple[AggregateResult, list[dict[str, Any]]]:
        from qsafe.federated import aggregate, decrypt_aggregate, encrypt_update

        self.costs.rounds += 1
        def client(u: ClientUpdate) -> Any:
            tensors = {"delta": _client_side(u, self.bound, u.client in self.deviates)}
            return encrypt_update(tensors, self.public, self.keys[u.client], rnd)

        encrypted = [self.costs.timed("client encrypt+sign", functools.partial(client, u)) for u in updates]
        self.costs.bytes_per_update = len(encrypted[0].to_bytes())
        norms = [self._norm(e) if self.bound is not None else None for e in encrypted]
        keep = [n is None or n <= self.bound * (1 + _NORM_SLACK) for n in norms]  # type: ignore[operator]
        chosen = [e for e, k in zip(encrypted, keep) if k]
        if len(chosen) < 2:
            raise UsageError(f"round {rnd}: fewer than 2 updates passed the encrypted norm check; nothing to decrypt")
        summed = self.costs.timed("aggregator verify+sum", lambda: aggregate(chosen, self.public, self.allowlist, rnd))
        if summed.refused or summed.aggregate is None:
            raise UsageError(f"round {rnd}: the aggregator refused updates: {[r.reason for r in summed.refused]}")
        total = self.costs.timed("key authority decrypt", lambda: decrypt_aggregate(summed.aggregate, self.secret,
                                                                                    average=False))["delta"]
        mean = total.astype(np.float64) / (len(updates) if self.plan.mean_over_all else len(chosen))
        if self.noise > 0 and self.bound is not None:
            mean += rng.normal(0.0, self.noise * self.bound / len(updates), size=mean.shape)
        weight = 1.0 / len(chosen)
        decisions = tuple(ClientDecision(u.client, ACCEPTED if k else REJECTED, weight if k else 0.0,
                                         "encrypted norm check" if n is not None else "encrypted sum")
                          for u, k, n in zip(updates, keep, norms))
        # what the aggregator saw: the signed container's digest and the decrypted norm, never the update itself
        entries = [{"digest": "sha256:" + hashlib.sha256(e.to_bytes()).hexdigest(),
                    "norm": None if n is None else round(n, 9)} for e, n in zip(encrypted, norms)]
        return AggregateResult(mean.astype(np.float32), decisions), entries


def encrypted_simulate(config: SimulationConfig, *, reference: bool = True, prep: Prepared | None = None,
                       on_round: Callable[..., None] | None = None,
                       progress: Callable[[int], None] | None = None) -> SimulationResult:
    """:func:`~qsafe.federated_sim.simulation.simulate` with every update encrypted, checked blind and summed blind.

    Args:
        config: the scenario; its defense must run blind (see :func:`blind_plan`).
        reference: also run the (plaintext) attack-free FedAvg reference.
        prep: prepared data to reuse.
        on_round: per-round hook (the audit trail).
        progress: called with 1 per round.

    Returns:
        The result; ``extra["encrypted"]`` holds the measured cost per phase and the bytes per update.

    Raises:
        UsageError: a defense that cannot run on encrypted updates.
        MissingDependencyError: TenSEAL is not installed.
    """
    plan, config = blind_plan(config)
    costs = _Costs()

    def factory(strategy: Strategy) -> Aggregator:
        return _EncryptedAggregator(config, strategy, costs)

    result = simulate(config, reference=reference, prep=prep, aggregator_factory=factory, on_round=on_round,
                      progress=progress)
    scheme = "bfv-packed" if plan.norm_bound is None else "ckks (norm keys)"
    result.extra["encrypted"] = {"scheme": scheme, **costs.to_json(config.clients)}
    return result
