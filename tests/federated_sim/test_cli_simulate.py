"""``qsafe fl simulate`` end to end on a short run; the scenario test with the full claim is marked slow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def test_simulate_two_rounds_with_audit(cli: Callable[..., Any], tmp_path: Path) -> None:
    out, log, plot = tmp_path / "r.json", tmp_path / "audit.jsonl", tmp_path / "p.png"
    result = cli(["fl", "simulate", "--defense", "multi-krum", "--rounds", "2", "--no-reference", "--results", out,
                  "--audit-log", log, "--plot", plot])
    assert result.exit_code == 0, result.stderr
    # not a terminal: one progress line per round on stderr (issue 13), nothing else
    assert [ln.split(",")[0] for ln in result.stderr.splitlines()] == ["qsafe: simulating: round 1/2",
                                                                       "qsafe: simulating: round 2/2"]
    assert "round   2  accuracy" in result.stdout and "ASR" in result.stdout
    data = json.loads(out.read_text())
    run = data["runs"][0]
    assert run["defense"] == "multi-krum" and len(run["rounds"]) == 2 and len(run["attackers"]) == 2
    assert 0.5 < run["accuracy"] <= 1 and 0 <= run["asr"] <= 1 and run["final"]["round"] == 2
    assert plot.read_bytes().startswith(b"\x89PNG")
    records = [json.loads(x) for x in log.read_text().splitlines()]
    clients = [r for r in records if r["type"] == "client"]
    assert len(clients) == 40 and {r["decision"] for r in clients} <= {"accepted", "rejected"}
    assert all(r["key_id"].startswith("sha256:") and r["digest"].startswith("sha256:") for r in clients)
    verify = cli(["fl", "audit", "verify", log, "--key", f"{log}.pub"])
    assert (verify.exit_code, verify.stdout, verify.stderr) == (0, "", "")


def test_simulate_usage_errors(cli: Callable[..., Any], tmp_path: Path) -> None:
    both = cli(["fl", "simulate", "--defense", "krum", "--defense", "median", "--audit-log", tmp_path / "a"])
    assert both.exit_code == 2 and "qsafe: error: --audit-log records one run" in both.stderr
    many = cli(["fl", "simulate", "--attackers", "9", "--clients", "10", "--rounds", "1"])
    assert many.exit_code == 2 and "fewer than half" in many.stderr


@pytest.mark.slow
def test_attack_succeeds_undefended_and_multi_krum_cuts_it() -> None:
    from qsafe.federated_sim.simulation import SimulationConfig, prepare, simulate

    config = SimulationConfig(rounds=10)
    prep = prepare(config)
    undefended = simulate(config, prep=prep)
    defended = simulate(SimulationConfig(rounds=10, defense="multi-krum"), prep=prep, reference=False)
    assert undefended.reference is not None
    assert undefended.run.final.asr >= 0.9
    assert defended.run.final.asr <= max(0.05, undefended.reference.final.asr + 0.02)
    assert abs(defended.run.final.accuracy - undefended.reference.final.accuracy) <= 0.01
    assert defended.run.final.attacker_weight == 0.0


def test_encrypt_refuses_defenses_that_must_read_updates(cli: Callable[..., Any]) -> None:
    result = cli(["fl", "simulate", "--encrypt", "--defense", "none", "--defense", "median", "--rounds", "1"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "median need to read individual updates" in result.stderr


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    from qsafe.federated_sim.simulation import SimulationConfig, simulate

    def run(seed: int) -> list[tuple[float, float, float]]:
        result = simulate(SimulationConfig(clients=6, rounds=2, seed=seed, defense="median"), reference=False)
        return [(m.accuracy, m.asr, m.raw_asr) for m in result.run.rounds]

    first = run(5)
    assert run(5) == first
    assert run(6) != first


def test_audit_key_from_keygen(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("correct horse\n")
    assert cli(["keygen", "--out", tmp_path / "agg", "--passphrase-file", tmp_path / "pw"]).exit_code == 0
    log = tmp_path / "audit.jsonl"
    run = cli(["fl", "simulate", "--clients", "6", "--rounds", "1", "--no-reference", "--audit-log", log,
               "--audit-key", tmp_path / "agg.key", "--passphrase-file", tmp_path / "pw"])
    assert run.exit_code == 0, run.stderr
    assert not (tmp_path / "audit.jsonl.pub").exists()
    ok = cli(["fl", "audit", "verify", log, "--key", tmp_path / "agg.pub"])
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert cli(["keygen", "--alg", "ecdsa-p256", "--out", tmp_path / "ec", "--no-passphrase"]).exit_code == 0
    classical = cli(["fl", "simulate", "--rounds", "1", "--audit-log", tmp_path / "b.jsonl",
                     "--audit-key", tmp_path / "ec.key"])
    assert classical.exit_code == 4 and "not post-quantum" in classical.stderr
    assert not (tmp_path / "b.jsonl").exists()
