"""Item 8: names from untrusted inputs never reach the terminal raw (ESC sequences, CR, line separators, bidi
controls are escaped in human-readable output); --json stays exact. Item 6: a tensor name with a lone surrogate
in a tampered model is a clear refusal (3 or 12) in sign, verify, load and inspect, never a UnicodeEncodeError."""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

import pytest

from qsafe._text import printable

from .conftest import leftovers, snapshot

# retitle the terminal, ring the bell, move the cursor up, return and overwrite the line, reorder with RLO
EVIL = "evil\x1b]0;pwned\x07\x1b[1A\r\u202eextra: nothing\u2028x"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\u2028")


def _clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


def test_printable_escapes_controls_only() -> None:
    assert printable("model-ñ/ü.safetensors\ttab") == "model-ñ/ü.safetensors\\x09tab"
    assert printable(EVIL) == "evil\\x1b]0;pwned\\x07\\x1b[1A\\x0d\\u202eextra: nothing\\u2028x"
    assert printable("a\nb") == "a\\x0ab"
    assert printable(b"\xff.bin".decode("utf-8", "surrogateescape")) == "\\xff.bin"


def test_escape_sequence_in_a_file_name(cli, ws: Path) -> None:
    (ws / "model" / EVIL).write_text("x")
    for args in (["verify", ws / "model", "--key", ws / "signer.pub"],
                 ["load", ws / "model", "--key", ws / "signer.pub", "--unsafe-skip-attestation",
                  "--framework", "numpy"]):
        r = cli(args)
        assert r.exit_code == 12, r.stderr
        _clean(r.stderr)
        assert f"qsafe: error: extra: {printable(EVIL)}" in r.stderr.splitlines()
    r = cli(["verify", ws / "model", "--key", ws / "signer.pub", "--json"])
    assert r.exit_code == 12 and "\x1b" not in r.stdout  # JSON escapes it, and keeps it exact
    assert json.loads(r.stdout)["extra"] == [EVIL]


def test_newline_in_a_file_name_cannot_forge_a_line(cli, ws: Path) -> None:
    (ws / "model" / "a\nmissing: config.json").write_text("x")
    r = cli(["verify", ws / "model", "--key", ws / "signer.pub"])
    assert r.exit_code == 12
    assert "qsafe: error: missing: config.json" not in r.stderr.splitlines()
    assert "qsafe: error: extra: a\\x0amissing: config.json" in r.stderr.splitlines()


def test_non_utf8_file_name_is_refused_before_signing(cli, ws: Path) -> None:
    name = os.fsencode(ws / "model") + b"/\xff\x1b.bin"
    with open(name, "wb") as handle:
        handle.write(b"x")
    before = snapshot(ws / "model")
    r = cli(["sign", ws / "model", "--key", ws / "signer.key", "--signature", ws / "new.sig"])
    assert r.exit_code == 2 and "not valid UTF-8" in r.stderr and "\\xff\\x1b.bin" in r.stderr
    _clean(r.stderr)
    assert not (ws / "new.sig").exists() and snapshot(ws / "model") == before


def _tensor_file(path: Path, name_json: str) -> None:
    """A safetensors file whose one tensor is named by the raw JSON string literal ``name_json``."""
    header = ('{' + name_json + ':{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}').encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")


def test_escape_sequence_in_a_tensor_name(cli, ws: Path) -> None:
    _tensor_file(ws / "model" / "model.safetensors", json.dumps("w\x1b[2J\r" + "\u202e"))
    r = cli(["verify", ws / "model", "--key", ws / "signer.pub"])
    assert r.exit_code == 12 and "changed: model.safetensors (tensors:" in r.stderr
    _clean(r.stderr)
    assert "w\\x1b[2J\\x0d\\u202e (added)" in r.stderr


@pytest.mark.parametrize("command", ["sign", "verify", "load"])
def test_lone_surrogate_tensor_name_is_a_clear_refusal(cli, ws: Path, command: str) -> None:
    _tensor_file(ws / "model" / "model.safetensors", '"w\\udc80"')
    args = {"sign": ["sign", ws / "model", "--key", ws / "signer.key", "--signature", ws / "new.sig"],
            "verify": ["verify", ws / "model", "--key", ws / "signer.pub"],
            "load": ["load", ws / "model", "--key", ws / "signer.pub", "--unsafe-skip-attestation",
                     "--framework", "numpy"]}[command]
    before = snapshot(ws)
    r = cli(args)
    assert r.exit_code in (3, 12), r.stderr
    # sign parses it (refused: 3); verify and load see the header's digest changed first (12; load never parses it)
    assert "lone surrogate" in r.stderr or "header unreadable" in r.stderr or "(tensors: (header))" in r.stderr
    assert "internal error" not in r.stderr and snapshot(ws) == before and not leftovers(ws)


def _rewrite_statement(sig: Path, out: Path, edit) -> None:  # type: ignore[no-untyped-def]
    bundle = json.loads(sig.read_text())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"]).decode()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(edit(payload).encode()).decode()
    out.write_text(json.dumps(bundle))


def test_inspect_of_an_unverified_bundle_escapes_names(cli, ws: Path) -> None:
    bad = ws / "bad.sig"
    _rewrite_statement(ws / "model" / "model.sig", bad,
                       lambda p: p.replace('"name": "model"', '"name": ' + json.dumps(EVIL), 1)
                       .replace('"name": "config.json"', '"name": "conf\\u001b[31mig.json"', 1))
    r = cli(["inspect", bad])
    assert r.exit_code == 0, r.stderr
    _clean(r.stdout)
    assert f"model:     {printable(EVIL)}" in r.stdout and "conf\\x1b[31mig.json" in r.stdout
    r = cli(["inspect", bad, "--json"])
    assert json.loads(r.stdout)["model_name"] == EVIL
    lone = ws / "lone.sig"
    _rewrite_statement(ws / "model" / "model.sig", lone,
                       lambda p: p.replace('"name": "embed.weight"', '"name": "embed\\udc80"', 1))
    r = cli(["inspect", lone])
    assert r.exit_code == 3 and "lone surrogate" in r.stderr


def test_client_id_in_a_refused_update_is_escaped(cli, tmp_path: Path) -> None:
    from .test_federated_inputs import _forge, _parts  # noqa: F401 - fixture helpers

    pytest.importorskip("tenseal")
    import numpy as np

    from qsafe import keys
    from qsafe._he import container
    from qsafe._labels import FL_UPDATE_MAGIC
    from qsafe.federated import HEContext, encrypt_update

    ctx = HEContext.generate()
    ctx.save_public(tmp_path / "public.ctx")
    key = keys.generate("ml-dsa-44")
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "c.pub").write_bytes(key.public_key().to_pem())
    update = encrypt_update({"w": np.zeros(4, np.float32)}, HEContext.from_bytes(ctx.public().public_bytes()), key, 1)
    header = dict(update.header)
    header["client_key_id"] = "sha256:\x1b]0;owned\x07\nrefused nothing"
    forged = tmp_path / "forged.qfl"
    forged.write_bytes(container.encode(FL_UPDATE_MAGIC, container.canonical_json(header), update.ciphertexts,
                                        update.signature))
    (tmp_path / "ok.qfl").write_bytes(update.to_bytes())
    r = cli(["fl", "aggregate", tmp_path / "ok.qfl", forged, "--context", tmp_path / "public.ctx", "--clients",
             tmp_path / "clients", "--round", 1, "-o", tmp_path / "agg.qfl"])
    assert r.exit_code == 16
    _clean(r.stderr)
    assert "\\x1b]0;owned\\x07\\x0arefused nothing" in r.stderr
    assert not [line for line in r.stderr.splitlines() if line.startswith("qsafe: error: refused nothing")]
