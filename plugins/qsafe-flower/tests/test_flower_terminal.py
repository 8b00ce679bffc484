"""Issue 15 item 8: the key authority's command line names files the way `qsafe` does: a newline or ESC sequence in
a file name is escaped on its own `qsafe: error:` line, never a line of its own or a raw terminal control."""

from __future__ import annotations

from pathlib import Path

import pytest
from qsafe_flower.cli import main

from qsafe._text import printable

EVIL = "n\x1b]0;title\x07\x1b[2K\nqsafe: error: forged"


def test_key_authority_names_a_hostile_file_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qsafe.federated import HEContext

    ctx = HEContext.generate()
    ctx.save_secret(tmp_path / "secret.ctx", None)
    bad = tmp_path / ("clients" + EVIL)
    bad.write_text("not a public key\n")
    code = main(["--secret", str(tmp_path / "secret.ctx"), "--clients", str(bad), "--certfile", "c.pem",
                 "--keyfile", "k.pem", "--client-ca", "ca.pem"])
    err = capsys.readouterr().err
    assert code == 4
    assert "\x1b" not in err and "\x07" not in err
    lines = err.splitlines()
    assert all(line.startswith(("qsafe: error: ", "qsafe: hint: ")) for line in lines), err
    assert [line for line in lines if printable(bad) in line and line.startswith("qsafe: error: ")], err
