"""The goal table in docs/fraud_pipeline.md is the published run's, not typed by hand (see
scripts/fraud_publish_results.py): docs, copied report and goals.json agree, and every goal's verdict follows from
its measured figure."""

from __future__ import annotations

import json
import re

from tests.fraud.conftest import REPO

RESULTS = REPO / "examples" / "fraud_pipeline" / "results"
DOC = REPO / "docs" / "fraud_pipeline.md"


def _goals() -> list[dict]:  # type: ignore[type-arg]
    return json.loads((RESULTS / "goals.json").read_text())  # type: ignore[no-any-return]


def test_the_docs_goal_table_is_the_published_runs() -> None:
    from qsafe.fraud.report import goals_markdown

    text = DOC.read_text()
    begin = text.index("<!-- goals-table: begin")
    table = text[text.index("\n", begin) + 1:text.index("<!-- goals-table: end -->")]
    expected = "\n".join(goals_markdown(_goals()))
    assert table.startswith(expected + "\n")
    assert "\n".join(goals_markdown(_goals())) in (RESULTS / "report.md").read_text()
    assert "GOALS_TABLE" not in text


def test_each_published_verdict_follows_from_its_figure() -> None:
    goals = _goals()
    assert len(goals) == 5
    for g in goals:
        if "PR-AUC >=" in g["goal"] or "restored to >=" in g["goal"]:
            bound = float(re.search(r">= ([0-9.]+)", g["goal"]).group(1))  # type: ignore[union-attr]
            assert g["met"] == (float(g["measured"].split()[0]) >= bound), g
        elif "membership advantage" in g["goal"]:
            bound = float(re.search(r"<= ([0-9.]+)", g["goal"]).group(1))  # type: ignore[union-attr]
            assert g["met"] == (float(g["measured"].split()[0]) <= bound), g
    for png in ("pr_curves.png", "mia_roc.png", "extraction_f1.png", "poisoning.png"):
        assert (RESULTS / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
