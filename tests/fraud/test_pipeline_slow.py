"""The whole pipeline, as the example runs it: every stage, its signed evidence, resume, and the goals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fraud.test_pipeline import _project


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_example_pipeline_end_to_end(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from qsafe import model_evidence as me
    from qsafe.fraud.dataset import verify_dataset
    from qsafe.keys import load_public_key

    config = _project(tmp_path)
    run = cli(["pipeline", "run", config, "--json"])
    assert run.exit_code == 0, run.stderr
    result = json.loads(run.stdout)
    assert all(s["status"] == "ran" for s in result["stages"].values())
    work = tmp_path / "work"
    keys = {n: load_public_key(work / "keys" / f"{n}.pub") for n in ("data-owner", "auditor", "release")}

    # every statement verifies with the right key and is about exactly this model / these rows
    verify_dataset(tmp_path / "data" / "creditcard_sample.csv", (work / "data" / "dataset.manifest.json").read_bytes(),
                   [keys["data-owner"]])
    digest = result["stages"]["train"]["summary"]["model_digest"]
    for name in ("dp-certificate", "privacy-audit", "theft-audit", "model-card"):
        ev = me.verify_model_evidence(work / "evidence" / f"{name}.json", [keys["auditor"]], model_digest=digest)
        assert ev.model_digest == digest
    card = me.verify_model_evidence(work / "evidence" / "model-card.json", [keys["auditor"]], model_digest=digest)
    assert card.claims["training_data.poisoning_audit.passed"] is True
    assert card.claims["privacy.epsilon"] <= 1.0

    # the release went through the gate, and the gate refused the card's absence and a foreign card
    release = json.loads((work / "results" / "release.json").read_text())
    assert release["scores_identical"] and release["attestation"]["verdict"] == "allow"
    assert release["refusals"]["without_model_card"]["exit_code"] == 15
    assert release["refusals"]["card_signed_by_another_key"]["exit_code"] == 15

    # the report, its plots and the goal table
    report = work / "report"
    for name in ("report.md", "pr_curves.png", "mia_roc.png", "extraction_f1.png", "poisoning.png"):
        assert (report / name).stat().st_size > 1000
    goals = {g["goal"].split(":")[0]: g for g in json.loads((report / "goals.json").read_text())}
    assert len(goals) == 5
    evaluation = json.loads((work / "results" / "evaluation.json").read_text())["metrics"]
    assert evaluation["released"]["sample_rate"]["pr_auc"] > evaluation["released"]["real_rate"]["pr_auc"]
    privacy = json.loads((work / "results" / "privacy.json").read_text())
    assert privacy["released_procedure"]["worst"]["frauds"]["advantage"] < privacy["released_procedure"]["dp_bound"][
        "advantage"]
    exercise = json.loads((work / "results" / "poisoning-exercise.json").read_text())["scenarios"]
    assert exercise["clean"]["audit_failed_folds"] == 0 and exercise["targeted_10pct"]["audit_failed_folds"] == 5
    assert exercise["targeted_10pct"]["high_amount_recall"] < exercise["clean"]["high_amount_recall"] - 0.2
    assert exercise["targeted_10pct_remediated"]["high_amount_recall"] >= 0.8
    theft = json.loads((work / "results" / "theft.json").read_text())
    assert theft["monitor"]["benign"]["false_alarm_rate"] <= 0.01
    assert theft["watermark"]["false_positives"] / theft["watermark"]["independent_tests"] <= 0.01

    # resume: nothing to do; a changed row stops the next run at the manifest, naming it
    again = cli(["pipeline", "run", config, "--json"])
    assert again.exit_code == 0
    assert all(s["status"].startswith("skipped") for s in json.loads(again.stdout)["stages"].values())
    shutil.copy(work / "report" / "report.md", tmp_path / "report-before.md")
    csv = tmp_path / "data" / "creditcard_sample.csv"
    lines = csv.read_bytes().split(b"\n")
    lines[2001] = lines[2001][:-1] + (b"1" if lines[2001].endswith(b"0") else b"0")
    csv.write_bytes(b"\n".join(lines))
    tampered = cli(["pipeline", "run", config])
    assert tampered.exit_code == 12 and "changed row(s) 2000 " in tampered.stderr
