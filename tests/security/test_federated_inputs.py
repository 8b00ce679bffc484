"""Items 4 and 10 (federated): one malformed update never sinks a round; a hostile aggregate is a clean refusal;
a forged public context (TenSEAL parameters other than the declared scheme) is refused; a client can pin the
context fingerprint. Transcripts through the CLI, asserting exit codes and what was (not) written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from qsafe import keys
from qsafe._he import container
from qsafe._labels import FL_AGGREGATE_MAGIC, FL_CONTEXT_MAGIC, FL_UPDATE_MAGIC
from qsafe.federated import HEContext, encrypt_update

from .conftest import leftovers

HUGE = "1" + "0" * 5000


@pytest.fixture(scope="module")
def fl(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A key authority's contexts, three allowlisted clients and their valid round-1 updates (made once)."""
    d = tmp_path_factory.mktemp("fl")
    ctx = HEContext.generate()
    ctx.save_public(d / "public.ctx")
    ctx.save_secret(d / "secret.ctx", None)
    (d / "clients").mkdir()
    rng = np.random.default_rng(4)
    clients = [keys.generate("ml-dsa-44") for _ in range(3)]
    public = HEContext.from_bytes(ctx.public().public_bytes())
    for i, key in enumerate(clients):
        (d / "clients" / f"c{i}.pub").write_bytes(key.public_key().to_pem())
        (d / f"c{i}.key").write_bytes(key.to_pem())
        update = {"w": rng.uniform(-1, 1, (4, 8)).astype(np.float32), "b": rng.uniform(-1, 1, 3).astype(np.float32)}
        save_file(update, str(d / f"u{i}.safetensors"))
        (d / f"u{i}.qfl").write_bytes(encrypt_update(update, public, key, 1).to_bytes())
    return {"dir": d, "ctx": ctx}


def _parts(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    box = container.decode(data, data[: data.index(b"\n") + 1], "x")
    return box.header_bytes, list(box.blobs), box.signature


def _forge(fl: dict, header: bytes) -> bytes:
    """Update u2 with its header replaced (blobs and signature kept): what a hostile or broken client sends."""
    _, blobs, signature = _parts((fl["dir"] / "u2.qfl").read_bytes())
    return container.encode(FL_UPDATE_MAGIC, header, blobs, signature)


def _hostile_headers(fl: dict) -> dict[str, bytes]:
    header, _, _ = _parts((fl["dir"] / "u2.qfl").read_bytes())
    text = header.decode()
    doc = json.loads(text)
    dtype_list = json.loads(text)
    dtype_list["tensors"][0]["dtype"] = ["F32"]
    assert '"clip":1.0' in text and '"round":1,' in text
    return {
        "nan": b'{"a":NaN}',
        "infinity": b'{"a":Infinity}',
        "5000-digit integer": text.replace('"round":1,', f'"round":{HUGE},').encode(),
        "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "clip 10**400": text.replace('"clip":1.0', '"clip":1' + "0" * 400).encode(),
        "dtype list": container.canonical_json(dtype_list),
        "shape of strings": container.canonical_json({**doc, "tensors": [{**doc["tensors"][0], "shape": ["4"]}]}),
        "scheme not an object": container.canonical_json({**doc, "scheme": [1, 2]}),
        "duplicate key": text.replace('{"ciphertext_sha256"', '{"round":2,"ciphertext_sha256"', 1).encode(),
        "lone surrogate": text.replace('"kind":"update"', '"kind":"update\\ud800"').encode(),
    }


def _write_hostile(fl: dict, target: Path) -> dict[str, Path]:
    target.mkdir(exist_ok=True)
    out = {}
    for i, (name, header) in enumerate(sorted(_hostile_headers(fl).items())):
        path = target / f"hostile{i}.qfl"
        path.write_bytes(_forge(fl, header))
        out[name] = path
    return out


@pytest.mark.parametrize("with_round", [True, False])
def test_one_bad_update_never_sinks_a_round(cli, fl: dict, tmp_path: Path, with_round: bool) -> None:
    d = fl["dir"]
    hostile = _write_hostile(fl, tmp_path / "in")
    out = tmp_path / "agg.qfl"
    args = ["fl", "aggregate", d / "u0.qfl", *hostile.values(), d / "u1.qfl", "--context", d / "public.ctx",
            "--clients", d / "clients", "-o", out, "--json"]
    r = cli([*args, "--round", 1] if with_round else args)
    assert r.exit_code == 16, r.stderr
    report = json.loads(r.stdout)
    assert report["count"] == 2 and report["round"] == 1
    refused = {Path(x["source"]).name: x for x in report["refused"]}
    assert set(refused) == {p.name for p in hostile.values()}
    for name, path in hostile.items():
        entry = refused[path.name]
        assert entry["exit_code"] == 3 and entry["error"] == "FormatError", (name, entry)
    assert "internal error" not in r.stderr and f"refused {hostile['nan']}" in r.stderr
    # the two valid updates were aggregated: the key authority decrypts their average
    r = cli(["fl", "decrypt", out, "--secret", d / "secret.ctx", "-o", tmp_path / "avg.safetensors",
             "--recompute-from", d, "--recompute-from", tmp_path / "in", "--clients", d / "clients"])
    assert r.exit_code == 0, r.stderr


def test_recompute_names_an_unreadable_update_when_a_contributor_is_missing(cli, fl: dict, tmp_path: Path) -> None:
    d = fl["dir"]
    r = cli(["fl", "aggregate", d / "u0.qfl", d / "u1.qfl", "--context", d / "public.ctx", "--clients",
             d / "clients", "-o", tmp_path / "agg.qfl", "--round", 1])
    assert r.exit_code == 0, r.stderr
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "u0.qfl").write_bytes((d / "u0.qfl").read_bytes())
    (tmp_path / "only" / "u1.qfl").write_bytes((d / "u1.qfl").read_bytes()[:-100])  # damaged in transit
    os.mkfifo(tmp_path / "only" / "pipe.qfl")
    r = cli(["fl", "decrypt", tmp_path / "agg.qfl", "--secret", d / "secret.ctx", "-o", tmp_path / "avg.st",
             "--recompute-from", tmp_path / "only", "--clients", d / "clients"])
    assert r.exit_code == 16 and "were not given" in r.stderr and "unreadable update file(s)" in r.stderr
    assert "pipe.qfl" in r.stderr and not (tmp_path / "avg.st").exists()


def _hostile_aggregates(fl: dict, tmp_path: Path, cli) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    d = fl["dir"]
    r = cli(["fl", "aggregate", d / "u0.qfl", d / "u1.qfl", "--context", d / "public.ctx", "--clients",
             d / "clients", "-o", tmp_path / "good.qfl", "--round", 1])
    assert r.exit_code == 0, r.stderr
    header, blobs, _ = _parts((tmp_path / "good.qfl").read_bytes())
    doc = json.loads(header)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, len(b), dtype=np.uint8).tobytes() for b in blobs]

    def enc(h: object, bl: list[bytes] = blobs) -> bytes:
        raw = h if isinstance(h, bytes) else container.canonical_json(h)
        return container.encode(FL_AGGREGATE_MAGIC, raw, bl)

    return {
        "nan header": enc(b'{"count":NaN}'),
        "deep header": enc(b"[" * 100_000 + b"]" * 100_000),
        "huge count": enc(header.replace(b'"count":2', b'"count":' + HUGE.encode())),
        "count true": enc({**doc, "count": True}),
        "count beyond contributors": enc({**doc, "count": 3}),
        "dtype list": enc({**doc, "tensors": [{**doc["tensors"][0], "dtype": ["F32"]}, *doc["tensors"][1:]]}),
        "contributors not objects": enc({**doc, "contributors": [1, 2]}),
        "one contributor": enc({**doc, "count": 1, "contributors": doc["contributors"][:1]}),
        "random ciphertexts": enc({**doc, "ciphertext_sha256": [container.sha256_hex(b) for b in noise]}, noise),
        "ciphertext digest mismatch": enc({**doc, "ciphertext_sha256": ["0" * 64] * len(blobs)}),
        "truncated": enc(doc)[:-7],
    }


def test_hostile_aggregate_is_refused_by_the_key_authority(cli, fl: dict, tmp_path: Path) -> None:
    d = fl["dir"]
    for name, data in _hostile_aggregates(fl, tmp_path, cli).items():
        agg = tmp_path / "hostile-agg.qfl"
        agg.write_bytes(data)
        out = tmp_path / "avg.safetensors"
        r = cli(["fl", "decrypt", agg, "--secret", d / "secret.ctx", "-o", out])
        assert r.exit_code in (3, 14, 16), (name, r.exit_code, r.stderr)
        assert not out.exists() and not leftovers(tmp_path), name
        r = cli(["fl", "decrypt", agg, "--secret", d / "secret.ctx", "-o", out, "--recompute-from", d,
                 "--clients", d / "clients"])
        assert r.exit_code in (3, 16), (name, r.exit_code, r.stderr)
        assert not out.exists(), name


def test_forged_public_context_with_other_tenseal_parameters_is_refused(cli, fl: dict, tmp_path: Path) -> None:
    import tenseal as ts

    d = fl["dir"]
    header, _blobs, _ = _parts((d / "public.ctx").read_bytes())
    declared = json.loads(header)["scheme"]
    forged_ts = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=declared["poly_modulus_degree"],
                           plain_modulus=786433, coeff_mod_bit_sizes=declared["coeff_mod_bit_sizes"])
    blob = bytes(forged_ts.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                     save_relin_keys=False))
    forged = tmp_path / "forged.ctx"
    forged.write_bytes(container.encode(FL_CONTEXT_MAGIC, header, [blob]))
    out = tmp_path / "u.qfl"
    r = cli(["fl", "encrypt", d / "u0.safetensors", "--context", forged, "--key", d / "c0.key", "--round", 1,
             "-o", out])
    assert r.exit_code == 3 and "plain_modulus 786433 (declared " in r.stderr, r.stderr
    assert not out.exists() and not leftovers(tmp_path)
    r = cli(["fl", "aggregate", d / "u0.qfl", d / "u1.qfl", "--context", forged, "--clients", d / "clients",
             "-o", tmp_path / "agg.qfl", "--round", 1])
    assert r.exit_code in (3, 16) and not (tmp_path / "agg.qfl").exists()


def test_client_pins_the_context_fingerprint(cli, fl: dict, tmp_path: Path) -> None:
    d = fl["dir"]
    other = HEContext.generate()
    other.save_public(tmp_path / "other.ctx")
    pinned = fl["ctx"].fingerprint
    base = ["fl", "encrypt", d / "u0.safetensors", "--key", d / "c0.key", "--round", 1]
    r = cli([*base, "--context", tmp_path / "other.ctx", "-o", tmp_path / "x.qfl", "--context-fingerprint", pinned])
    assert r.exit_code == 16 and f"not the pinned {pinned}" in r.stderr
    assert not (tmp_path / "x.qfl").exists()
    r = cli([*base, "--context", d / "public.ctx", "-o", tmp_path / "y.qfl", "--context-fingerprint", pinned])
    assert r.exit_code == 0, r.stderr
