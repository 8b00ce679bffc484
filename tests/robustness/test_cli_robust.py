"""`qsafe robust` end to end on a tiny model: train, sign, attack, certify, predict, report --sign, and the gate
refusing the model when its signed evaluation misses the policy's threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qsafe import keys

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory) -> dict[str, Path]:
    from click.testing import CliRunner

    from qsafe.cli import main

    tmp = tmp_path_factory.mktemp("robust")
    model = tmp / "digits-model"
    model.mkdir()
    runner = CliRunner()
    res = runner.invoke(main, ["robust", "train", "-o", str(model / "model.safetensors"), "--epochs", "2",
                               "--train-samples", "300", "-q", "--json"])
    assert res.exit_code == 0, res.output
    paths = {"model": model, "tmp": tmp}
    for name in ("signer", "evaluator"):
        key = keys.generate()
        (tmp / f"{name}.key").write_bytes(key.to_file_bytes(None))
        (tmp / f"{name}.pub").write_bytes(key.public_key().to_pem())
        paths[name] = tmp / f"{name}.pub"
        paths[name + "_key"] = tmp / f"{name}.key"
    res = runner.invoke(main, ["sign", str(model), "--key", str(paths["signer_key"])])
    assert res.exit_code == 0, res.output
    return paths


def test_train_writes_a_loadable_model(signed_model) -> None:
    from qsafe.robustness.models import load_classifier

    _net, info = load_classifier(signed_model["model"] / "model.safetensors")
    assert info["recipe"]["recipe"] == "standard" and info["train"]["samples"] == 300
    assert 0.0 <= info["test_clean_accuracy"] <= 1.0


def test_attack_certify_predict(cli, signed_model) -> None:
    p = signed_model
    res = cli(["robust", "attack", p["model"], "--key", p["signer"], "--epsilon", "0.1", "--samples", "20",
               "--restarts", "1", "--steps", "5", "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    (r,) = out["results"]
    assert [a["name"] for a in r["attacks"]] == ["fgsm", "pgd", "apgd-ce"]
    assert r["robust_accuracy"] == pytest.approx(min(a["accuracy"] for a in r["attacks"]), abs=1.0)
    assert r["robust_accuracy"] <= out["clean_accuracy"]
    res = cli(["robust", "certify", p["model"], "--sigma", "0.25", "--radius", "0.25", "--n", "100", "--samples",
               "5", "--json", "-q"])
    assert res.exit_code == 0 and len(json.loads(res.stdout)["certificates"]) == 5
    res = cli(["robust", "predict", p["model"], "--sigma", "0.25", "--n", "100", "--index", "3", "--json", "-q"])
    assert res.exit_code == 0 and json.loads(res.stdout)["predictions"][0]["label"] is not None


def test_report_sign_and_gate(cli, signed_model) -> None:
    p = signed_model
    out, plot = p["tmp"] / "eval.json", p["tmp"] / "eval.png"
    res = cli(["robust", "report", p["model"], "--key", p["signer"], "--epsilon", "0.05", "--restarts", "1",
               "--samples", "12", "--sigma", "0.25", "--radius", "0.25", "--n", "60", "--plot", plot,
               "-o", out, "--sign", p["evaluator_key"], "-q"])
    assert res.exit_code == 0, res.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "worst-case robust" in res.stdout
    from qsafe.model_evidence import verify_model_evidence
    from qsafe.verifying import verify

    digest = verify(p["model"], p["model"] / "model.sig", p["signer"],
                    policy=__import__("qsafe").VerificationPolicy()).model_digest
    ev = verify_model_evidence(out, p["evaluator"], model_digest=digest)
    measured = ev.claims["robust_accuracy[linf,0.05]"]
    assert "certified_accuracy[l2,0.25]" in ev.claims and ev.predicate["dataset"]["samples"] == 12
    for floor, code in ((max(0.0, measured - 0.05), 0), (min(1.0, measured + 0.05) + 1e-9, 15)):
        policy = p["tmp"] / f"policy-{code}.json"
        policy.write_text(json.dumps({"format": "qsafe-attestation-policy/v1", "name": "robust",
                                      "freshness": {"accept": ["binding"]}, "require": [],
                                      "claims": {"model.robust_accuracy[linf,0.05]": {"at_least": floor}}}))
        res = cli(["verify", p["model"], "--key", p["signer"], "--evaluation", out, "--evaluator-key",
                   p["evaluator"], "--policy", policy])
        assert res.exit_code == code, res.stderr
        if code == 15:
            assert "model.robust_accuracy[linf,0.05]" in res.stderr and "is below" in res.stderr


def test_report_usage_errors(cli, signed_model) -> None:
    p = signed_model
    assert cli(["robust", "report", p["model"], "-q"]).exit_code == 2  # nothing to evaluate
    res = cli(["robust", "report", p["model"], "--epsilon", "0.1", "-o", p["tmp"] / "e.json", "--sign",
               p["evaluator_key"], "-q"])
    assert res.exit_code == 2  # signing needs the verified digest (--key)
    res = cli(["robust", "report", p["model"], "--key", p["signer"], "--epsilon", "0.1", "-o",
               p["model"] / "eval.json", "-q"])
    assert res.exit_code == 2 and not (p["model"] / "eval.json").exists()
    other = keys.generate()
    (p["tmp"] / "other.pub").write_bytes(other.public_key().to_pem())
    res = cli(["robust", "attack", p["model"], "--key", p["tmp"] / "other.pub", "--epsilon", "0.1", "-q"])
    assert res.exit_code == 10
