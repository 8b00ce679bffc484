"""Flower's simulation engine (Ray) running qsafe's SMS-spam backdoor scenario (20 virtual clients, 2 attackers,
model replacement) gives the accuracy and attack success of ``qsafe fl simulate`` for the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _deploy import _descendants, session_members

BIN = Path(sys.executable).parent
ROUNDS = 3
pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
@pytest.mark.parametrize("defense", ["none", "multi-krum"])
def test_flower_simulation_matches_qsafe_fl_simulate(defense: str, tmp_path: Path) -> None:
    # Ray's own processes (GCS, raylet, workers) descend from the simulation: all are ended, also on failure
    proc = subprocess.Popen([sys.executable, "-m", "qsafe_flower.scenario", "--defense", defense, "--rounds",
                             str(ROUNDS), "--seed", "0", "--attackers", "2", "--clients", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=800)
    finally:
        for pid in {proc.pid, *_descendants(proc.pid), *session_members(proc.pid)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    assert session_members(proc.pid) == []
    assert proc.returncode == 0, stderr[-4000:]
    ours = json.loads(stdout)
    report = tmp_path / "qsafe.json"
    native = subprocess.run([str(BIN / "qsafe"), "fl", "simulate", "--defense", defense, "--rounds", str(ROUNDS),
                             "--seed", "0", "--attackers", "2", "--clients", "20", "--no-reference", "--json",
                             str(report)], check=False, capture_output=True, text=True, timeout=800)
    assert native.returncode == 0, native.stderr[-4000:]
    (result,) = json.loads(report.read_text())["runs"]
    assert len(ours["rounds"]) == len(result["rounds"]) == ROUNDS
    for mine, theirs in zip(ours["rounds"], result["rounds"]):
        assert abs(mine["accuracy"] - theirs["accuracy"]) <= 0.01, (mine, theirs)
        assert abs(mine["asr"] - theirs["asr"]) <= 0.01, (mine, theirs)
    if defense == "none":
        assert ours["asr"] > 0.5  # the backdoor works without a defense, in both engines
    else:
        assert ours["asr"] < 0.05 and ours["accuracy"] > 0.9
