"""Reports: JSON round trip, the Markdown matrix and the plot, from synthetic per-round metrics (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsafe.errors import FormatError
from qsafe.federated_sim.report import Report, matrix_markdown, plot_report, report_from_json
from qsafe.federated_sim.simulation import RoundMetrics, RunResult, SimulationConfig, SimulationResult


def _result(defense: str, attackers: int, asr: float) -> SimulationResult:
    rounds = tuple(RoundMetrics(r, 0.9 + r / 100, asr * r / 3, asr, 0.1, 0.5) for r in (1, 2, 3))
    config = SimulationConfig(defense=defense, attackers=attackers, rounds=3)
    reference = RunResult("none", (), tuple(RoundMetrics(r, 0.95, 0.0, 0.12, 0.0, 0.4) for r in (1, 2, 3)))
    return SimulationResult(config, RunResult(defense, tuple(range(attackers)), rounds), reference, 10, 8, 2, 1.0)


def test_matrix_round_trip_and_plot(tmp_path: Path) -> None:
    results = tuple(_result(d, k, 0.5 if d == "none" else 0.0) for k in (1, 2) for d in ("none", "krum"))
    report = Report(results, results[0].reference)
    again = report_from_json(report.to_json())
    table = matrix_markdown(again)
    assert table == matrix_markdown(report)
    assert "| defense | 1 attacker | 2 attackers |" in table
    assert "| none | 50.0% (50.0%) / 93.00% | 50.0% (50.0%) / 93.00% |" in table
    assert "ASR floor 0.0% (raw 12.0%)" in table
    plot_report(again, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FormatError):
        report_from_json({"version": "something else"})
