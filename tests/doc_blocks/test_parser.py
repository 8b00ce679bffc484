"""The doc-block parser: which blocks run, directives, and the errors it must raise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from . import runner


def blocks(text: str, doc: str = "docs/x.md") -> list[runner.Block]:
    return runner.parse(text, doc)


def test_sh_blocks_run_python_only_when_marked_other_fences_never() -> None:
    text = """
intro
```sh
qsafe --version
```
```python
illustrative(...)
```
<!-- doctest: setup=model -->
```python
print("runs")
```
```text
qsafe verify MODEL --key PUB
```
```
plain
```
```bash
echo bash
```
"""
    got = blocks(text)
    assert [(b.lang, b.line, b.code) for b in got] == [
        ("sh", 3, "qsafe --version\n"), ("python", 10, 'print("runs")\n'), ("sh", 19, "echo bash\n")]
    assert got[1].setups == ("model",)


def test_directive_keys() -> None:
    text = '<!-- doctest: setup=model,keys exit=12 expect="changed: a b" expect=x timeout=5 slow -->\n\n```sh\nfalse\n```\n'
    (b,) = blocks(text)
    assert (b.setups, b.exit, b.expect, b.timeout, b.slow, b.skip) == (("model", "keys"), 12, ("changed: a b", "x"), 5.0,
                                                                       True, None)
    (s,) = blocks('<!-- doctest: skip reason="needs a GPU" -->\n```sh\nnvidia-smi\n```\n')
    assert s.skip == "needs a GPU"


def test_indented_fence_in_a_list_item() -> None:
    (b,) = blocks("1. step\n\n   ```sh\n   echo one\n     echo two\n   ```\n")
    assert b.code == "echo one\n  echo two\n"


@pytest.mark.parametrize(("text", "message"), [
    ('<!-- doctest: skip -->\n```sh\nx\n```\n', "skip needs a reason"),
    ('<!-- doctest: bogus=1 -->\n```sh\nx\n```\n', "unknown doctest key 'bogus'"),
    ('<!-- doctest: setup=nosuch -->\n```sh\nx\n```\n', "unknown setup nosuch"),
    ('<!-- doctest: exit=x -->\n```sh\nx\n```\n', "exit must be 0-255"),
    ('<!-- doctest: slow -->\nsome prose\n```sh\nx\n```\n', "directive not followed by a code block"),
    ('<!-- doctest: slow -->\n', "directive not followed by a code block"),
    ('<!-- doctest: slow -->\n```text\nx\n```\n', "never runs"),
    ('```sh\n$ qsafe verify m --key k\n```\n', "use ```console"),
    ('```sh\necho never closed\n', "never closed"),
    ('text <!-- doctest: slow --> more\n', "alone on its line"),
    ('<!-- doctest: reason="x" -->\n```sh\nx\n```\n', "reason= belongs to skip"),
])
def test_malformed_directives_are_errors_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(runner.DocSyntaxError, match="docs/x.md:[0-9]+: ") as err:
        blocks(text)
    assert message in str(err.value)


def test_every_python_block_of_the_api_page_must_run() -> None:
    with pytest.raises(runner.DocSyntaxError, match="every python block of docs/api.md runs"):
        blocks("```python\nimport qsafe\n```\n", doc="docs/api.md")


def test_a_document_runs_in_order_in_one_directory_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    doc = tmp_path / "repo" / "docs" / "t.md"
    doc.parent.mkdir(parents=True)
    doc.write_text("""
```sh
echo made > a.txt
export GONE=1
```
<!-- doctest: expect="made" -->
```sh
cat a.txt; test -z "${GONE:-}"; test "$QSAFE_PASSPHRASE" = doctest-passphrase
```
<!-- doctest: exit=3 -->
```sh
exit 3
```
<!-- doctest: slow -->
```sh
exit 9
```
<!-- doctest: setup=passphrase-file -->
```python
import pathlib; assert pathlib.Path("pw.txt").read_text() == "doctest-passphrase\\n"
```
```sh
echo "$PWD" && false
echo not reached
```
```sh
echo never run
```
""")
    bindir = Path(sys.executable).parent
    got = runner.run_document(doc, tmp_path / "work", bindir, include_slow=False, repo=tmp_path / "repo")
    assert [(o.block.line, o.returncode, o.ok) for o in got] == [(2, 0, True), (7, 0, True), (11, 3, True),
                                                                (19, 0, True), (22, 1, False)]
    assert "not reached" not in got[-1].output and "docs/t.md:22" in got[-1].describe()
    slow = runner.run_document(doc, tmp_path / "work2", bindir, include_slow=True, repo=tmp_path / "repo")
    assert [(o.block.line, o.returncode, o.ok) for o in slow][-1] == (15, 9, False)


def test_a_block_past_its_timeout_is_killed(tmp_path: Path) -> None:
    doc = tmp_path / "repo" / "README.md"
    doc.parent.mkdir(parents=True)
    doc.write_text('<!-- doctest: timeout=1 -->\n```sh\nsleep 30 & wait\n```\n')
    (o,) = runner.run_document(doc, tmp_path / "w", Path(sys.executable).parent, include_slow=False,
                               repo=tmp_path / "repo")
    assert o.returncode is None and not o.ok and o.seconds < 10 and "timed out" in o.describe()
