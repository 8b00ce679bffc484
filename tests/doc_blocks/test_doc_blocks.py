"""Every ```sh block of README.md, docs/*.md and examples/**/README.md runs verbatim (and every marked
```python block): one test per document, its blocks in order in one temporary directory.

The convention (directives, setups, environment) is in tests/doc_blocks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from . import runner

DOCS = runner.documents()


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(runner.REPO).as_posix() for p in paths]


def _blocks(doc: Path) -> list[runner.Block]:
    try:
        return runner.parse_file(doc)
    except runner.DocSyntaxError:
        return []  # reported by test_directives_are_well_formed and by the document's own test


def _check(doc: Path, tmp_path: Path, include_slow: bool) -> None:
    blocks = runner.parse_file(doc)  # a syntax error fails here, naming file:line
    outcomes = runner.run_document(doc, tmp_path / "doc", Path(sys.executable).parent, include_slow=include_slow)
    expected = [b for b in blocks if b.skip is None and (include_slow or not b.slow)]
    assert outcomes, f"{doc.name}: no block ran"
    failed = [o for o in outcomes if not o.ok]
    assert not failed, "a documented command block failed:\n" + failed[0].describe()
    assert [o.block for o in outcomes] == expected


RUNNABLE = [d for d in DOCS if any(b.skip is None and not b.slow for b in _blocks(d))]
WITH_SLOW = [d for d in DOCS if any(b.skip is None and b.slow for b in _blocks(d))]


@pytest.mark.parametrize("doc", RUNNABLE, ids=_ids(RUNNABLE))
def test_document_blocks_run(doc: Path, tmp_path: Path) -> None:
    _check(doc, tmp_path, include_slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", WITH_SLOW, ids=_ids(WITH_SLOW))
def test_document_blocks_run_with_slow_ones(doc: Path, tmp_path: Path) -> None:
    _check(doc, tmp_path, include_slow=True)


def test_directives_are_well_formed() -> None:
    errors = []
    for doc in DOCS:
        try:
            runner.parse_file(doc)
        except runner.DocSyntaxError as exc:
            errors.append(str(exc))
    assert not errors, "\n".join(errors)


def test_the_readme_and_docs_have_command_blocks() -> None:
    """The runner finds the documents and their blocks (a parser that finds nothing would pass everything)."""
    names = _ids(DOCS)
    assert "README.md" in names and any(n.startswith("docs/") for n in names)
    readme = runner.parse_file(runner.REPO / "README.md")
    assert sum(b.lang == "sh" and b.skip is None for b in readme) >= 1


def test_skipped_blocks_are_listed_with_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    skipped = [(b.where, b.skip) for d in DOCS for b in _blocks(d) if b.skip is not None]
    assert all(reason and reason.strip() for _, reason in skipped)
    with capsys.disabled():  # the list is part of the test output on purpose: skips must stay visible
        print(f"\n[doc blocks] {len(skipped)} skipped block(s):")
        for where, reason in skipped:
            print(f"  {where}: {reason}")
