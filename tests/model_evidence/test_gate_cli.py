"""`qsafe verify`/`qsafe load` with --evaluation/--evaluator-key, and `qsafe evidence`: exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from qsafe import keys
from qsafe import model_evidence as me
from qsafe.errors import AttestationError
from qsafe.loading import load_model
from qsafe.signing import sign

REPO = Path(__file__).resolve().parents[2]
HOPPER = REPO / "attestations" / "evidence" / "hopper-h100.evidence.json"
DEV_POLICY = json.loads((REPO / "attestations" / "policies" / "unsafe-development-replay.json").read_text())
RULE = "model.robust_accuracy[linf,0.1]"


@pytest.fixture()
def setup(tmp_path: Path) -> dict[str, Path | str]:
    root = tmp_path / "model"
    root.mkdir()
    save_file({"w": np.ones((3, 3), dtype=np.float32)}, str(root / "model.safetensors"))
    signer, evaluator = keys.generate(), keys.generate()
    manifest = sign(root, signer)
    digest = "sha256:" + manifest.root_digest
    paths: dict[str, Path | str] = {"model": root, "digest": digest}
    for name, key in (("signer", signer), ("evaluator", evaluator)):
        (tmp_path / f"{name}.pub").write_bytes(key.public_key().to_pem())
        (tmp_path / f"{name}.key").write_bytes(key.to_file_bytes(None))
        paths[name] = tmp_path / f"{name}.pub"
        paths[name + "_key"] = tmp_path / f"{name}.key"
    pred = {"clean_accuracy": 0.98, "results": [{"kind": "empirical", "norm": "linf", "epsilon": 0.1,
                                                 "robust_accuracy": 0.88}]}
    paths["eval"] = tmp_path / "eval.json"
    paths["eval"].write_bytes(me.sign_model_evidence(digest, me.ROBUSTNESS_EVALUATION, pred, evaluator))
    paths["other_eval"] = tmp_path / "other.json"
    paths["other_eval"].write_bytes(me.sign_model_evidence("sha256:" + "00" * 32, me.ROBUSTNESS_EVALUATION, pred,
                                                           evaluator))
    paths["forged"] = tmp_path / "forged.json"
    paths["forged"].write_bytes(me.sign_model_evidence(digest, me.ROBUSTNESS_EVALUATION, pred, keys.generate()))
    for name, floor in (("ok", 0.85), ("strict", 0.9)):
        doc = {"format": "qsafe-attestation-policy/v1", "name": f"robust-{name}",
               "freshness": {"accept": ["binding"]}, "require": [], "claims": {RULE: {"at_least": floor}}}
        paths[f"policy_{name}"] = tmp_path / f"{name}.json"
        paths[f"policy_{name}"].write_text(json.dumps(doc))
        both = dict(DEV_POLICY, name=f"dev-{name}", claims={**DEV_POLICY["claims"], RULE: {"at_least": floor}})
        paths[f"both_{name}"] = tmp_path / f"both-{name}.json"
        paths[f"both_{name}"].write_text(json.dumps(both))
    return paths


def _verify(cli, p, *extra):
    return cli(["verify", p["model"], "--key", p["signer"], *extra])


def test_verify_allows_and_reports_claims(cli, setup) -> None:
    p = setup
    res = _verify(cli, p, "--evaluation", p["eval"], "--evaluator-key", p["evaluator"], "--policy", p["policy_ok"],
                  "--json")
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["model_evidence"][0]["claims"]["robust_accuracy[linf,0.1]"] == 0.88
    assert _verify(cli, p, "--evaluation", p["eval"], "--evaluator-key", p["evaluator"], "--policy",
                   p["policy_ok"]).stderr == ""


@pytest.mark.parametrize("case,needle", [
    ("weaker", "model.robust_accuracy[linf,0.1]: 0.88 is below 0.9"),
    ("missing", "model.robust_accuracy[linf,0.1]: missing claim"),
    ("unsigned", "evaluation forged.json: the signature does not verify"),
    ("other-model", "evaluation other.json: model evidence other.json is about model sha256:0000"),
])
def test_verify_denies_exit_15(cli, setup, case: str, needle: str) -> None:
    p = setup
    args = {"weaker": ["--evaluation", p["eval"], "--policy", p["policy_strict"]],
            "missing": ["--policy", p["policy_ok"]],
            "unsigned": ["--evaluation", p["forged"], "--policy", p["policy_ok"]],
            "other-model": ["--evaluation", p["other_eval"], "--policy", p["policy_ok"]]}[case]
    if "--evaluation" in args:
        args += ["--evaluator-key", p["evaluator"]]
    res = _verify(cli, p, *args)
    assert res.exit_code == 15, res.stderr
    assert needle in res.stderr
    if case in ("unsigned", "other-model"):  # the refused file's claim is then missing, and named too
        assert "model.robust_accuracy[linf,0.1]: missing claim" in res.stderr


def test_verify_usage_errors(cli, setup) -> None:
    p = setup
    assert _verify(cli, p, "--evaluation", p["eval"]).exit_code == 2
    res = _verify(cli, p, "--evaluation", p["eval"], "--evaluator-key", p["evaluator"], "--policy", p["both_ok"])
    assert res.exit_code == 2 and "environment requirements" in res.stderr


def test_load_one_policy_for_environment_and_model(cli, setup) -> None:
    p = setup
    base = ["load", p["model"], "--key", p["signer"], "--evidence", HOPPER, "--framework", "numpy"]
    ok = cli([*base, "--policy", p["both_ok"], "--evaluation", p["eval"], "--evaluator-key", p["evaluator"], "--json"])
    assert ok.exit_code == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["attestation"]["modelEvidence"][0]["claims"]["robust_accuracy[linf,0.1]"] == 0.88
    weak = cli([*base, "--policy", p["both_strict"], "--evaluation", p["eval"], "--evaluator-key", p["evaluator"]])
    assert weak.exit_code == 15 and "model.robust_accuracy[linf,0.1]: 0.88 is below 0.9" in weak.stderr
    missing = cli([*base, "--policy", p["both_ok"]])
    assert missing.exit_code == 15 and "model.robust_accuracy[linf,0.1]: missing claim" in missing.stderr
    skip = cli(["load", p["model"], "--key", p["signer"], "--unsafe-skip-attestation", "--evaluation", p["eval"],
                "--evaluator-key", p["evaluator"]])
    assert skip.exit_code == 2


def test_load_model_library(setup) -> None:
    p = setup
    loaded = load_model(p["model"], Path(p["model"]) / "model.sig", p["signer"], p["both_ok"], evidence=HOPPER,
                        framework="numpy", evaluations=[p["eval"]], evaluator_keys=[p["evaluator"]])
    assert loaded.attestation.claims[f"{RULE}@eval.json"] == 0.88
    with pytest.raises(AttestationError) as info:
        load_model(p["model"], Path(p["model"]) / "model.sig", p["signer"], p["both_ok"], evidence=HOPPER,
                   framework="numpy", evaluations=[p["forged"]], evaluator_keys=[p["evaluator"]])
    assert RULE in info.value.failed_claims and "evaluation forged.json" in info.value.failed_claims


def test_evidence_commands(cli, setup, tmp_path: Path) -> None:
    p = setup
    pred = tmp_path / "card.json"
    pred.write_text(json.dumps({"dp": {"epsilon": 2.5}}))
    out = tmp_path / "card.intoto.json"
    res = cli(["evidence", "sign", "--model", p["model"], "--model-key", p["signer"], "--predicate-type",
               "https://qsafe.dev/model-card/v1", "--predicate", pred, "--key", p["evaluator_key"], "-o", out,
               "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["modelDigest"] == p["digest"]
    res = cli(["evidence", "verify", out, "--evaluator-key", p["evaluator"], "--model-digest", p["digest"], "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["claims"] == {"dp.epsilon": 2.5}
    res = cli(["evidence", "verify", out, "--evaluator-key", p["signer"], "--model-digest", p["digest"]])
    assert res.exit_code == 10
    res = cli(["evidence", "verify", out, "--evaluator-key", p["evaluator"], "--model-digest", "sha256:" + "0" * 64])
    assert res.exit_code == 15
    res = cli(["evidence", "inspect", out])
    assert res.exit_code == 0 and "dp.epsilon = 2.5" in res.stdout
    res = cli(["evidence", "sign", "--model-digest", p["digest"], "--predicate-type", "x", "--predicate", pred,
               "--key", p["evaluator_key"], "-o", pred])
    assert res.exit_code == 2  # never overwrites an input
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    res = cli(["evidence", "sign", "--model-digest", p["digest"], "--predicate-type", "x", "--predicate", bad,
               "--key", p["evaluator_key"], "-o", tmp_path / "o.json"])
    assert res.exit_code == 3 and not (tmp_path / "o.json").exists()
