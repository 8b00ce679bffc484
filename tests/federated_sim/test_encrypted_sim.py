"""Encrypted mode: the norm check runs on ciphertexts, only norms are decrypted, the boosted attacker is left out."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import UsageError
from qsafe.federated.defenses import ClientUpdate
from qsafe.federated_sim.encrypted_sim import VALUE_CLIP, _client_side, encrypted_simulate
from qsafe.federated_sim.simulation import SimulationConfig


def test_blind_defenses_only() -> None:
    with pytest.raises(UsageError, match="needs to read individual updates"):
        encrypted_simulate(SimulationConfig(defense="krum", rounds=1))


def test_client_side_clips_unless_deviating() -> None:
    update = ClientUpdate(0, np.array([3.0, 4.0, 0.0], dtype=np.float32), 1)
    assert np.linalg.norm(_client_side(update, 0.5, deviates=False)) == pytest.approx(0.5, rel=1e-6)
    assert _client_side(update, 0.5, deviates=True).tolist() == [VALUE_CLIP, VALUE_CLIP, 0.0]
    assert _client_side(update, None, deviates=False).tolist() == [VALUE_CLIP, VALUE_CLIP, 0.0]


@pytest.mark.slow
def test_encrypted_norm_check_rejects_the_boosted_attackers() -> None:
    pytest.importorskip("tenseal")
    config = SimulationConfig(defense="norm-bound", clients=6, attackers=2, rounds=1, defense_params={"bound": 0.5})
    seen: list[tuple[list[ClientUpdate], object, list[dict[str, object]]]] = []
    result = encrypted_simulate(config, reference=False, on_round=lambda r, u, res, e: seen.append((u, res, e)))
    updates, aggregate, entries = seen[0]
    attackers = set(result.run.attackers)
    decisions = {d.client: d.decision for d in aggregate.decisions}  # type: ignore[attr-defined]
    assert {c for c, d in decisions.items() if d == "rejected"} == attackers
    for update, entry in zip(updates, entries):
        norm = float(np.linalg.norm(update.delta.astype(np.float64)))
        if update.client in attackers:  # boosted: far above the bound, and so measured blind
            assert entry["norm"] > 1.0
        else:  # honest clients clipped to 0.5 before encrypting; the blind norm agrees to CKKS precision
            assert entry["norm"] == pytest.approx(min(norm, 0.5), rel=2e-3)
    cost = result.extra["encrypted"]
    assert cost["scheme"] == "ckks (norm keys)" and cost["bytes_per_update"] > 1_000_000
    assert cost["seconds_per_round"]["aggregator encrypted norm"] > 0


def test_the_blind_forms_come_from_the_strategies() -> None:
    """No list of names: a defense runs blind when its Strategy says how (BlindAggregation), built-ins included."""
    from qsafe.federated.defenses import (
        DEFENSES,
        BlindAggregation,
        DifferentialPrivacy,
        Krum,
        Median,
        NormBound,
        blind_defense_names,
    )

    assert [n for n in blind_defense_names() if n in DEFENSES] == ["none", "norm-bound", "dp"]
    assert NormBound().blind() == BlindAggregation(norm_bound=0.5, fixed_params={"bound": 0.5})  # adaptive -> fixed
    assert NormBound(bound=0.3).blind() == BlindAggregation(norm_bound=0.3, fixed_params={"bound": 0.3})
    assert DifferentialPrivacy(clip_norm=0.7, noise_multiplier=0.2).blind() == BlindAggregation(
        norm_bound=0.7, noise_multiplier=0.2, mean_over_all=True)
    assert DifferentialPrivacy(Median(), clip_norm=0.7).blind() is None  # no blind form around a median
    assert Krum().blind() is None


def test_a_plugin_defense_with_a_blind_form_runs_encrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A defense from a plugin (not a built-in name) is accepted by --encrypt once its Strategy has blind()."""
    from qsafe.federated import defenses
    from qsafe.federated.defenses import BlindAggregation, FedAvg
    from qsafe.federated_sim.encrypted_sim import blind_plan

    class ToyBlindSum(FedAvg):
        name = "toy-blind-sum"

        def __init__(self, bound: float = 0.25) -> None:
            self.norm_bound = bound

        def blind(self) -> BlindAggregation:
            return BlindAggregation(norm_bound=self.norm_bound)

    real_load, real_names = defenses.load_defense, defenses.defense_names
    monkeypatch.setattr(defenses, "defense_names", lambda: [*real_names(), "toy-blind-sum"])
    monkeypatch.setattr(defenses, "load_defense", lambda n: ToyBlindSum if n == "toy-blind-sum" else real_load(n))
    assert "toy-blind-sum" in defenses.blind_defense_names()
    plan, config = blind_plan(SimulationConfig(defense="toy-blind-sum", defense_params={"bound": 0.4}, rounds=1))
    assert plan == BlindAggregation(norm_bound=0.4) and config.defense_params == {"bound": 0.4}
    with pytest.raises(UsageError, match=r"supports the defenses none, norm-bound, dp, .*toy-blind-sum"):
        blind_plan(SimulationConfig(defense="median", rounds=1))
    _, fixed = blind_plan(SimulationConfig(defense="norm-bound", rounds=1))
    assert fixed.defense_params == {"bound": 0.5}  # the adaptive bound, fixed and published blind
