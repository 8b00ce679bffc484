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
