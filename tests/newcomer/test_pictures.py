"""Pictures people read (issue 13 item 6): the defense matrix as a heatmap, plot lines that stay visible, and
`qsafe fl report` re-plotting saved results; every file an example README refers to exists."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsafe.federated_sim import report as report_module
from qsafe.federated_sim.report import Report, plot_matrix, plot_report
from qsafe.federated_sim.simulation import RoundMetrics, RunResult, SimulationConfig, SimulationResult

REPO = Path(__file__).resolve().parents[2]


def _result(defense: str, attackers: int, asr: float, acc: float = 0.97) -> SimulationResult:
    rounds = tuple(RoundMetrics(r, acc, asr, asr, 0.1, 0.5) for r in range(1, 31))
    config = SimulationConfig(defense=defense, attackers=attackers, rounds=30)
    reference = RunResult("none", (), tuple(RoundMetrics(r, 0.98, 0.0, 0.12, 0.0, 0.4) for r in range(1, 31)))
    return SimulationResult(config, RunResult(defense, tuple(range(attackers)), rounds), reference, 10, 8, 2, 1.0)


@pytest.fixture()
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the report functions would save (inspected instead of pixels)."""
    saved: list[Any] = []
    monkeypatch.setattr(report_module, "_save", lambda fig, path: saved.append(fig))
    return saved


def test_winning_defenses_are_not_hidden_under_the_reference(figures: list[Any]) -> None:
    """Three defenses at the ASR floor coincide with the attack-free reference: each must still be findable."""
    results = tuple(_result(d, 2, 0.0 if d != "none" else 0.99) for d in ("none", "krum", "multi-krum", "flame"))
    plot_report(Report(results, results[0].reference), "unused.png")
    (fig,) = figures
    ax_asr = fig.axes[1]
    lines = {line.get_label(): line for line in ax_asr.get_lines()}
    reference = lines.pop("attack-free FedAvg (reference)")
    assert reference.get_zorder() < min(line.get_zorder() for line in lines.values())  # drawn underneath
    assert set(lines) == {"none: ASR 99%, acc 97.0%", "krum: ASR 0%, acc 97.0%", "multi-krum: ASR 0%, acc 97.0%",
                          "flame: ASR 0%, acc 97.0%"}  # final values in the legend
    floor = [line for label, line in lines.items() if not label.startswith("none")]
    assert len({line.get_marker() for line in floor}) == 3 and len({line.get_linestyle() for line in floor}) == 3
    starts = {line.get_markevery()[0] for line in floor}  # markers at different rounds: none covers another
    assert len(starts) == 3


def test_the_matrix_is_a_heatmap_of_asr_and_accuracy(figures: list[Any]) -> None:
    defenses = ("none", "krum", "median")
    results = tuple(_result(d, k, 0.9 if d == "none" else 0.05 * k, 0.97 - 0.01 * k) for k in (1, 2, 4)
                    for d in defenses)
    plot_report(Report(results, results[0].reference), "unused.png")  # several attacker counts: the heatmap
    (fig,) = figures
    ax_asr, ax_acc = fig.axes[0], fig.axes[1]  # (then their two colorbar axes)
    asr = ax_asr.get_images()[0].get_array()
    acc = ax_acc.get_images()[0].get_array()
    assert asr.shape == acc.shape == (3, 3)
    assert [t.get_text() for t in ax_asr.get_yticklabels()] == list(defenses)
    assert [t.get_text() for t in ax_asr.get_xticklabels()] == ["1 attacker", "2 attackers", "4 attackers"]
    assert asr[0, 0] == pytest.approx(90.0) and asr[2, 2] == pytest.approx(20.0)
    assert acc[1, 2] == pytest.approx((0.93 - 0.98) * 100)  # points against the attack-free reference
    cells = [t.get_text() for t in ax_asr.texts]
    assert "90.0%" in cells and len(cells) == 9 and len(ax_acc.texts) == 9
    figures.clear()
    plot_matrix(Report(results, None), "unused.png")  # without a reference: accuracy in %
    assert figures[0].axes[1].get_title() == "clean accuracy, %"


def test_fl_report_replots_saved_results(cli: Callable[..., Any], tmp_path: Path) -> None:
    results = tuple(_result(d, k, 0.5 if d == "none" else 0.0) for k in (1, 2) for d in ("none", "krum"))
    saved = tmp_path / "m.json"
    saved.write_text(json.dumps(Report(results, results[0].reference).to_json()))
    table = cli(["fl", "report", saved, "--matrix", "--plot", tmp_path / "heat.png"])
    assert table.exit_code == 0, table.stderr
    assert "| defense | 1 attacker | 2 attackers |" in table.stdout
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    one = cli(["fl", "report", saved, "--attackers", "2", "--plot", tmp_path / "lines.png"])
    assert one.exit_code == 0 and "attackers [0, 1] of 20" in one.stdout
    none = cli(["fl", "report", saved, "--attackers", "4"])
    assert none.exit_code == 2 and "has no run with 4 attackers (it has [1, 2])" in none.stderr
    same = cli(["fl", "report", saved, "--plot", saved])
    assert same.exit_code == 2


def _referenced(readme: Path) -> set[str]:
    text = readme.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s#]+)\)", text)
    paths = re.findall(r"`((?:results|\.\./\.\./docs)/[^`\s]+)`", text)
    return {p for p in links + paths if not re.match(r"[a-z]+://", p)}


@pytest.mark.parametrize("readme", sorted((REPO / "examples").rglob("README.md")),
                         ids=lambda p: p.parent.name)
def test_every_file_an_example_readme_refers_to_exists(readme: Path) -> None:
    missing = sorted(p for p in _referenced(readme)
                     if not ((readme.parent / p).exists() or ("*" in p and any(readme.parent.glob(p)))))
    assert not missing, f"{readme.relative_to(REPO)} refers to files that do not exist: {missing}"
