"""The pipeline command: config validation, stage listing, the dataset check and the audit gate inside a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsafe.errors import FormatError
from qsafe.fraud.pipeline import config_from_dict, load_config
from tests.fraud.conftest import REPO

EXAMPLE = REPO / "examples" / "fraud_pipeline"


def test_the_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE / "pipeline.toml")
    assert cfg["training"]["epsilon"] == 1.0 and cfg["pipeline"]["workers"] == 2
    assert cfg.path(cfg["data"]["csv"]).is_file() and cfg.path(cfg["release"]["policy"]).is_file()


@pytest.mark.parametrize(("doc", "match"), [
    ({"trainig": {}}, "unknown section"),
    ({"training": {"epsilon": "one"}}, "epsilon must be"),
    ({"training": {"unsafe_train_on_failed_audit": 1}}, "must be like False"),
    ({"theft": {"querys": 10}}, "unknown key"),
    ({"data": {"split": ["a"]}}, "split must be"),
])
def test_bad_configs_are_format_errors(doc: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(FormatError, match=match):
        config_from_dict(doc, Path("."))


def test_a_missing_provenance_document_is_a_clear_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _project(tmp_path)
    (tmp_path / "data" / "PROVENANCE.md").unlink()
    out = cli(["pipeline", "run", config, "--until", "manifest"])
    assert out.exit_code == 3 and "provenance document" in out.stderr


def test_stages_command(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli(["pipeline", "stages", "--json"])
    assert out.exit_code == 0
    names = [s["stage"] for s in json.loads(out.stdout)]
    assert names[:3] == ["keys", "manifest", "poisoning-audit"] and names[-2:] == ["release", "report"]
    bad = cli(["pipeline", "run", REPO / "README.md"])
    assert bad.exit_code == 3 and "not TOML" in bad.stderr


def _project(tmp_path: Path, rows: bytes | None = None) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLE / "data" / "creditcard_sample.csv", tmp_path / "data")
    shutil.copy(EXAMPLE / "data" / "PROVENANCE.md", tmp_path / "data")
    if rows is not None:
        (tmp_path / "data" / "creditcard_sample.csv").write_bytes(rows)
    shutil.copytree(EXAMPLE / "policies", tmp_path / "policies")
    shutil.copy(EXAMPLE / "pipeline.toml", tmp_path)
    return tmp_path / "pipeline.toml"


def _targeted_flip(raw: bytes) -> bytes:
    """The CSV with the 10% highest-amount frauds relabelled legitimate (the targeted attack, on the file)."""
    lines = raw.split(b"\n")
    rows = [(i, float(ln.split(b",")[29])) for i, ln in enumerate(lines[1:], 1) if ln.endswith(b",1")]
    for i, _ in sorted(rows, key=lambda r: -r[1])[: len(rows) // 10]:
        lines[i] = lines[i][:-1] + b"0"
    return b"\n".join(lines)


def test_poisoned_data_stops_training_and_a_changed_row_stops_everything(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _project(tmp_path, _targeted_flip((EXAMPLE / "data" / "creditcard_sample.csv").read_bytes()))
    refused = cli(["pipeline", "run", config, "--until", "train"])
    assert refused.exit_code == 11, refused.stderr
    assert "FAILED its poisoning audit" in refused.stderr and "log1p(Amount)/4" in refused.stderr
    assert not (tmp_path / "work" / "model" / "model.safetensors").exists()
    audit = json.loads((tmp_path / "work" / "state" / "poisoning-audit.json").read_text())["summary"]
    assert audit["verdict"] == "fail"
    # the data owner's signed manifest now pins these rows: change one and the run stops at the manifest
    csv = tmp_path / "data" / "creditcard_sample.csv"
    lines = csv.read_bytes().split(b"\n")
    lines[101] = lines[101].replace(b".", b"5", 1)
    csv.write_bytes(b"\n".join(lines))
    tampered = cli(["pipeline", "run", config, "--until", "train"])
    assert tampered.exit_code == 12 and "changed row(s) 100 " in tampered.stderr


def test_the_override_is_loud_and_recorded(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _project(tmp_path, _targeted_flip((EXAMPLE / "data" / "creditcard_sample.csv").read_bytes()))
    out = cli(["pipeline", "run", config, "--until", "train", "--unsafe-train-on-failed-audit", "--json"])
    assert out.exit_code == 0, out.stderr
    assert "WARNING: --unsafe-train-on-failed-audit" in out.stderr and "UNSAFE" in out.stderr
    summary = json.loads(out.stdout)["stages"]["train"]["summary"]
    assert summary["audit_override"] is True and summary["epsilon"] <= 1.0
    from qsafe import model_evidence as me
    from qsafe.keys import load_public_key

    ev = me.verify_model_evidence(tmp_path / "work" / "evidence" / "dp-certificate.json",
                                  [load_public_key(tmp_path / "work" / "keys" / "auditor.pub")],
                                  model_digest=summary["model_digest"])
    assert ev.claims["epsilon"] == summary["epsilon"] and ev.claims["q"] == 0.25
    assert np.isclose(ev.claims["sigma"], summary["sigma"])
