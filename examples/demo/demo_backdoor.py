"""Demo step: a federated backdoor on real SMS data, stopped by Multi-Krum, with a signed audit trail.

Runs a short version of the scenario (8 clients, 2 of them attackers boosting a poisoned update, 4 rounds) with
no defense and with Multi-Krum through ``qsafe fl simulate``, verifies the Multi-Krum run's audit trail, then
changes one recorded weight and shows that ``qsafe fl audit verify`` names the changed record (exit 17).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from _cli import qsafe  # examples/demo/_cli.py: one runner for every step

TITLE = "Federated backdoor: attack without defense, Multi-Krum stops it, audit trail tamper-evident"


_qsafe = functools.partial(qsafe, expect=0, show=False)

def run(workdir: Path) -> None:
    d = workdir / "backdoor"
    d.mkdir()
    common = ["fl", "simulate", "--clients", "8", "--rounds", "4", "--no-reference"]
    _qsafe(*common, "--defense", "none", "--results", d / "none.json")
    _qsafe(*common, "--defense", "multi-krum", "--krum-f", "2", "--results", d / "krum.json", "--audit-log", d / "audit.jsonl")
    none = json.loads((d / "none.json").read_text())["runs"][0]
    krum = json.loads((d / "krum.json").read_text())["runs"][0]
    print(f"no defense:  accuracy {none['accuracy']:.2%}, attack success {none['asr']:.1%}")
    print(f"multi-krum:  accuracy {krum['accuracy']:.2%}, attack success {krum['asr']:.1%}")
    if not (none["asr"] >= 0.8 and krum["asr"] <= 0.1):
        raise RuntimeError("the backdoor should succeed without defense and fail against Multi-Krum")
    _qsafe("fl", "audit", "verify", d / "audit.jsonl", "--key", d / "audit.jsonl.pub")
    lines = (d / "audit.jsonl").read_text().splitlines()
    record = json.loads(lines[3])
    record["weight"] = 0.5
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    (d / "audit.jsonl").write_text("\n".join(lines) + "\n")
    bad = _qsafe("fl", "audit", "verify", d / "audit.jsonl", "--key", d / "audit.jsonl.pub", expect=17)
    print("audit trail verified; after changing one weight: " + bad.stderr.splitlines()[0])
    if "record 4" not in bad.stderr:
        raise RuntimeError("the audit check should name record 4")
