"""The federated backdoor simulation: FedAvg training of the SMS spam classifier with compromised clients.

:func:`simulate` runs one scenario (a defense, an attack, a number of attackers) and, unless told not to, the
attack-free FedAvg reference with the same seed, so every result carries its floor. Metrics per round:

- ``accuracy``: clean accuracy on the held-out test set;
- ``asr``: among held-out spam the model classifies as spam *without* the trigger, the share it classifies as ham
  once the trigger is added (the backdoor's success on messages it would otherwise have caught);
- ``raw_asr``: the share of all triggered held-out spam classified as ham (includes spam missed anyway).

torch is imported only when a simulation runs (by :mod:`qsafe.federated_sim.model`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qsafe.errors import UsageError
from qsafe.federated.audit import update_digest
from qsafe.federated.defenses import ClientUpdate, DifferentialPrivacy, Strategy, make_strategy, privacy_spent
from qsafe.federated.defenses.base import AggregateResult
from qsafe.federated_sim import scenario as sc
from qsafe.federated_sim.attacks import AttackSpec, craft_update, poison_dataset
from qsafe.federated_sim.model import ModelSpec, TextModel

__all__ = [
    "Prepared",
    "RoundMetrics",
    "RunResult",
    "SimulationConfig",
    "SimulationResult",
    "attackers_of",
    "client_update",
    "evaluate",
    "prepare",
    "simulate",
]

RoundProgress = Callable[[int], None]


@dataclass(frozen=True)
class SimulationConfig:
    """One scenario. The defaults are the documented default scenario."""

    defense: str = "none"
    attackers: int = 2
    attack: AttackSpec = field(default_factory=AttackSpec)
    clients: int = 20
    rounds: int = 30
    seed: int = 0
    trigger: str = sc.DEFAULT_TRIGGER
    partition: str = "iid"
    alpha: float = 0.5
    test_fraction: float = 0.2
    max_tokens: int = 64
    model: ModelSpec = field(default_factory=ModelSpec)
    defense_params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`UsageError` for impossible settings."""
        if not 0 <= self.attackers < self.clients / 2:
            raise UsageError(f"attackers must be fewer than half of the {self.clients} clients, got {self.attackers}")
        if self.rounds < 1 or self.clients < 3:
            raise UsageError("a simulation needs at least 1 round and 3 clients")
        if self.partition not in ("iid", "dirichlet"):
            raise UsageError(f"partition must be 'iid' or 'dirichlet', got {self.partition!r}")


@dataclass(frozen=True)
class RoundMetrics:
    """Metrics of the global model after one round."""

    round: int
    accuracy: float
    asr: float
    raw_asr: float
    attacker_weight: float
    seconds: float


@dataclass(frozen=True)
class RunResult:
    """One training run: the scenario's or the attack-free reference's."""

    defense: str
    attackers: tuple[int, ...]
    rounds: tuple[RoundMetrics, ...]
    params: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0, np.float32))

    @property
    def final(self) -> RoundMetrics:
        """The last round's metrics."""
        return self.rounds[-1]


@dataclass(frozen=True)
class SimulationResult:
    """A scenario's run, its attack-free reference (if run) and the facts a report needs."""

    config: SimulationConfig
    run: RunResult
    reference: RunResult | None
    parameters: int
    train_size: int
    test_size: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: config, per-round and final ``accuracy``/``asr``/``raw_asr``, reference."""
        def run_json(run: RunResult) -> dict[str, Any]:
            return {"defense": run.defense, "attackers": list(run.attackers),
                    "rounds": [asdict(m) for m in run.rounds], "final": asdict(run.final),
                    "accuracy": run.final.accuracy, "asr": run.final.asr, "raw_asr": run.final.raw_asr}
        return {"config": asdict(self.config), **run_json(self.run),
                "reference": run_json(self.reference) if self.reference else None,
                "parameters": self.parameters, "train_size": self.train_size, "test_size": self.test_size,
                "seconds": self.seconds, **self.extra}


@dataclass(frozen=True)
class Prepared:
    """Encoded data of one (seed, split, model) setting, shared by the runs that use it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    spam_test: np.ndarray
    spam_test_triggered: np.ndarray
    parts: tuple[sc.ClientData, ...]
    model: TextModel
    initial: np.ndarray


def prepare(config: SimulationConfig) -> Prepared:
    """Load, de-duplicate, split, encode and partition the corpus; build the initial model (seeded)."""
    config.check()
    corpus = sc.load_corpus()
    rng = np.random.default_rng(config.seed)
    x = sc.encode(corpus.texts, buckets=config.model.buckets, length=config.max_tokens)
    train, test = sc.train_test_split(corpus.labels, config.test_fraction, rng)
    y_train = corpus.labels[train]
    parts = (sc.partition_iid(len(train), config.clients, rng) if config.partition == "iid"
             else sc.partition_dirichlet(y_train, config.clients, config.alpha, rng))
    spam = x[test][corpus.labels[test] == sc.SPAM]
    model = TextModel(config.model, config.seed)
    return Prepared(x[train], y_train, x[test], corpus.labels[test], spam,
                    sc.add_trigger(spam, config.trigger, buckets=config.model.buckets), tuple(parts), model,
                    model.get())


def evaluate(prep: Prepared, params: np.ndarray) -> tuple[float, float, float]:
    """``(accuracy, asr, raw_asr)`` of the global parameters ``params`` on the held-out set (see module doc)."""
    return _evaluate(prep, params)


def attackers_of(config: SimulationConfig) -> tuple[int, ...]:
    """The compromised clients' indices of a scenario (seeded, sorted): the same in every engine that runs it."""
    return _choose_attackers(config)


def client_update(config: SimulationConfig, prep: Prepared, client: int, global_params: np.ndarray, rnd: int,
                  strategy: Strategy | None = None) -> ClientUpdate:
    """What client ``client`` sends in round ``rnd`` (1-based): an honest update, or the attack's if compromised.

    The same function :func:`simulate` calls, so another engine (Flower's) driving it gets bit-identical updates.

    Args:
        config: the scenario.
        prep: its prepared data.
        client: the client's index.
        global_params: the current global parameters.
        rnd: the round number.
        strategy: the defense, when the attack adapts to its fixed norm bound.
    """
    return _client_round(config, prep, client, attackers_of(config), global_params, rnd, strategy)


def _evaluate(prep: Prepared, params: np.ndarray) -> tuple[float, float, float]:
    accuracy = float((prep.model.predict(params, prep.x_test) == prep.y_test).mean())
    caught = prep.model.predict(params, prep.spam_test) == sc.SPAM
    as_ham = prep.model.predict(params, prep.spam_test_triggered) == sc.HAM
    asr = float(as_ham[caught].mean()) if caught.any() else 0.0
    return accuracy, asr, float(as_ham.mean())


def _choose_attackers(config: SimulationConfig) -> tuple[int, ...]:
    rng = np.random.default_rng([config.seed, 7])
    return tuple(sorted(int(i) for i in rng.choice(config.clients, size=config.attackers, replace=False)))


Aggregator = Callable[[int, list[ClientUpdate], np.random.Generator], tuple[AggregateResult, list[dict[str, Any]]]]


def plain_aggregator(strategy: Strategy) -> Aggregator:
    """Aggregate in the clear with ``strategy``; audit entries carry each update's digest and norm."""
    def aggregate(rnd: int, updates: list[ClientUpdate], rng: np.random.Generator) -> tuple[AggregateResult, list[dict[str, Any]]]:
        result = strategy.aggregate(rnd, updates, rng)
        entries = [{"digest": update_digest(u.delta), "norm": float(np.linalg.norm(u.delta.astype(np.float64)))}
                   for u in updates]
        return result, entries
    return aggregate


def _client_round(config: SimulationConfig, prep: Prepared, client: int, attackers: tuple[int, ...],
                  global_params: np.ndarray, rnd: int, strategy: Strategy | None) -> ClientUpdate:
    part = prep.parts[client]
    x, y = prep.x_train[part.indices], prep.y_train[part.indices]
    seed = (config.seed * 1_000_003 + rnd * 1_009 + client) % 2**32
    if client not in attackers:
        return ClientUpdate(client, prep.model.train_update(global_params, x, y, seed), len(y))
    # colluding attackers pool the spam they hold (with Dirichlet splits one of them may hold none)
    pool = np.concatenate([prep.x_train[prep.parts[a].indices][prep.y_train[prep.parts[a].indices] == sc.SPAM]
                           for a in attackers])
    if len(pool) == 0:
        raise UsageError("the attackers hold no spam to poison; use another --seed or a larger --alpha")
    xp, yp = poison_dataset(x, y, pool, config.trigger, buckets=config.model.buckets,
                            copies=config.attack.poison_copies)
    poisoned = prep.model.train_update(global_params, xp, yp, seed)
    honest_norm = 0.0
    if config.attack.kind == "norm" and (strategy is None or strategy.norm_bound is None):
        honest_norm = float(np.linalg.norm(prep.model.train_update(global_params, x, y, seed)))
    sent = craft_update(config.attack, poisoned, boost=config.attack.boost_for(config.clients, len(attackers)),
                        bound=strategy.norm_bound if strategy else None, honest_norm=honest_norm)
    return ClientUpdate(client, sent, len(y))  # reports its clean size, as an honest client would


RoundHook = Callable[[int, list[ClientUpdate], AggregateResult, list[dict[str, Any]]], None]


def run_training(config: SimulationConfig, prep: Prepared, strategy: Strategy, attackers: tuple[int, ...], *,
                 aggregator: Aggregator | None = None, on_round: RoundHook | None = None,
                 progress: RoundProgress | None = None) -> RunResult:
    """Train ``config.rounds`` rounds with ``strategy`` and the given attackers.

    Args:
        config: the scenario.
        prep: its prepared data.
        strategy: the defense.
        attackers: indices of the compromised clients.
        aggregator: how updates are aggregated (default: in the clear with ``strategy``).
        on_round: called after each aggregation (the audit trail hooks in here).
        progress: called with 1 after each round.

    Returns:
        Per-round metrics.
    """
    aggregate = aggregator or plain_aggregator(strategy)
    noise_rng = np.random.default_rng([config.seed, 1])
    params = prep.initial.copy()
    metrics = []
    for rnd in range(1, config.rounds + 1):
        start = time.perf_counter()
        updates = [_client_round(config, prep, c, attackers, params, rnd, strategy) for c in range(config.clients)]
        result, entries = aggregate(rnd, updates, noise_rng)
        params = (params + result.delta).astype(np.float32)
        if on_round is not None:
            on_round(rnd, updates, result, entries)
        attacker_weight = sum(d.weight for d in result.decisions if d.client in attackers)
        metrics.append(RoundMetrics(rnd, *_evaluate(prep, params), float(attacker_weight),
                                    time.perf_counter() - start))
        if progress is not None:
            progress(1)
    return RunResult(strategy.name, attackers, tuple(metrics), params)


def simulate(config: SimulationConfig, *, reference: bool = True, prep: Prepared | None = None,
             aggregator_factory: Callable[[Strategy], Aggregator] | None = None, on_round: RoundHook | None = None,
             progress: RoundProgress | None = None) -> SimulationResult:
    """Run a scenario and, with ``reference``, the attack-free FedAvg run of the same seed.

    Args:
        config: the scenario.
        reference: also run attack-free FedAvg (the floor of ASR and the target accuracy).
        prep: prepared data to reuse (a matrix run prepares once).
        aggregator_factory: builds the aggregator from the strategy (the encrypted mode plugs in here).
        on_round: per-round hook of the scenario run (not of the reference).
        progress: called with 1 per round of every run.

    Returns:
        The scenario's result.

    Raises:
        UsageError: impossible settings or an unknown defense.
    """
    started = time.perf_counter()
    config.check()
    prep = prep or prepare(config)
    import torch  # already imported by the model; pin threads so runs are comparable and reproducible

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        strategy = make_strategy(config.defense, **config.defense_params)
        aggregator = aggregator_factory(strategy) if aggregator_factory else None
        run = run_training(config, prep, strategy, _choose_attackers(config), aggregator=aggregator,
                           on_round=on_round, progress=progress)
        ref = (run_training(config, prep, make_strategy("none"), (), progress=progress) if reference else None)
    finally:
        torch.set_num_threads(threads)
    extra: dict[str, Any] = {}
    if isinstance(strategy, DifferentialPrivacy) and strategy.accounting_applies and strategy.noise_multiplier > 0:
        extra["privacy"] = asdict(privacy_spent(strategy.noise_multiplier, config.rounds))
    return SimulationResult(config, run, ref, prep.model.size, len(prep.y_train), len(prep.y_test),
                            time.perf_counter() - started, extra)
