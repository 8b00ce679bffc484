"""The Python API fits Python habits (issue 13 item 4): paths for keys, a passphrase source, arguments checked
before any work, the default signature path, one-line reprs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import qsafe
from qsafe.errors import KeyFileError, ModelMismatchError, UsageError, WrongPassphraseError

HOPPER_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
HOPPER_AT = dt.datetime(2024, 5, 1, 0, 1, tzinfo=dt.timezone.utc)
PQ = qsafe.VerificationPolicy()  # required by keyword: the default instance requires a post-quantum signature


@pytest.fixture()
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any hashing of the model fails the test: argument errors must come before the work."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was hashed before the arguments were checked")

    monkeypatch.setattr("qsafe.signing.hash_model", refuse)
    monkeypatch.setattr("qsafe.verifying.hash_model", refuse)


def test_sign_takes_a_key_path_and_a_passphrase_source(model_dir: Path, release_keys: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    priv, pub = release_keys
    (tmp_path / "pw.txt").write_text("pw\n")
    qsafe.sign(model_dir, str(priv), passphrase_file=tmp_path / "pw.txt")
    qsafe.verify(model_dir, keys=pub, policy=PQ)
    qsafe.sign(model_dir, priv, signature=tmp_path / "b.sig", passphrase=lambda: "pw")
    qsafe.verify(model_dir, tmp_path / "b.sig", pub, policy=PQ)
    qsafe.sign(model_dir, priv, signature=tmp_path / "c.sig", passphrase=b"pw")
    qsafe.verify(model_dir, tmp_path / "c.sig", [pub], policy=PQ)


def test_sign_checks_its_arguments_before_hashing(model_dir: Path, release_keys: tuple[Path, Path],
                                                 no_hashing: None, tmp_path: Path) -> None:
    priv = release_keys[0]
    # the defect: `qsafe.sign("model", "release.key")` hashed everything, then AttributeError on str.sign
    with pytest.raises(KeyFileError, match="is passphrase-protected and no passphrase was given") as err:
        qsafe.sign(model_dir, str(priv))
    assert "passphrase=" in (err.value.hint or "")
    with pytest.raises(WrongPassphraseError):
        qsafe.sign(model_dir, priv, passphrase="nope")
    with pytest.raises(TypeError, match="key must be a qsafe.keys.PrivateKey or the path of a .key file, not int"):
        qsafe.sign(model_dir, 42)  # type: ignore[arg-type]
    with pytest.raises(KeyFileError, match="does not exist"):
        qsafe.sign(model_dir, tmp_path / "missing.key", passphrase="pw")
    with pytest.raises(UsageError, match="does not exist"):
        qsafe.sign(tmp_path / "no-model", priv, passphrase="pw")
    with pytest.raises(UsageError, match="not both"):
        qsafe.sign(model_dir, priv, passphrase="pw", passphrase_file=tmp_path / "pw.txt")
    assert not (model_dir / "model.sig").exists()


def test_verify_defaults_the_signature_and_checks_arguments_first(signed_model: Path, release_keys: tuple[Path, Path],
                                                                  no_hashing: None, tmp_path: Path) -> None:
    pub = release_keys[1]
    with pytest.raises(UsageError, match="pass the signer's public key"):
        qsafe.verify(signed_model, policy=PQ)
    with pytest.raises(TypeError, match="keys must be"):
        qsafe.verify(signed_model, keys=3.5, policy=PQ)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="does not exist"):
        qsafe.verify(tmp_path / "no-model", keys=pub, policy=PQ)
    (tmp_path / "bare").mkdir()
    with pytest.raises(UsageError, match=r"no signature given and .*bare/model\.sig does not exist"):
        qsafe.verify(tmp_path / "bare", keys=pub, policy=PQ)


def test_verify_default_signature_detects_a_change(signed_model: Path, release_keys: tuple[Path, Path]) -> None:
    result = qsafe.verify(str(signed_model), keys=str(release_keys[1]), policy=PQ)
    assert result.post_quantum and result.algorithm == "ml-dsa-65"
    (signed_model / "config.json").write_text('{"hidden_size": 17}\n')
    with pytest.raises(ModelMismatchError):
        qsafe.verify(signed_model, keys=release_keys[1], policy=PQ)


def test_reprs_are_one_line(signed_model: Path, release_keys: tuple[Path, Path]) -> None:
    from qsafe.attestation.shipped import recorded

    v = qsafe.verify(signed_model, keys=release_keys[1], policy=PQ)
    text = repr(v)
    assert "\n" not in text and len(text) < 250, text
    assert text.startswith("Verification(model='my-model', digest=sha256:") and "files=2, tensors=2" in text
    assert v.manifest.root_digest not in text  # a prefix only, never the manifest
    loaded = qsafe.load_model(signed_model, keys=release_keys[1], policy="nvidia-hopper-cc",
                              evidence=recorded("hopper-h100").path, nonce=HOPPER_NONCE, at=HOPPER_AT,
                              framework="numpy")
    text = repr(loaded)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("LoadedModel(2 tensors, 68 values, numpy, from model.safetensors; 2 files verified, ")
    assert text.endswith("attestation=allow by 'nvidia-hopper-cc' (challenge))")
    skipped = qsafe.load_model(signed_model, keys=release_keys[1], unsafe_skip_attestation=True, framework="numpy")
    assert "attestation=SKIPPED (unsafe)" in repr(skipped)


def test_load_model_defaults_the_signature_and_checks_arguments_first(signed_model: Path, tmp_path: Path,
                                                                      release_keys: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError, match="no public key given"):
        qsafe.load_model(signed_model, policy="nvidia-hopper-cc")
    with pytest.raises(UsageError, match="an attestation policy is required"):
        qsafe.load_model(signed_model, keys=release_keys[1])
    with pytest.raises(UsageError, match="no shipped attestation policy is named 'hopper'"):
        qsafe.load_model(signed_model, keys=release_keys[1], policy="hopper", collect=True)
    (tmp_path / "bare").mkdir()
    with pytest.raises(UsageError, match="model.sig does not exist"):
        qsafe.load_model(tmp_path / "bare", keys=release_keys[1], policy="nvidia-hopper-cc", collect=True)


def test_the_api_page_documents_every_public_name_with_its_real_signature() -> None:
    """docs/api.md's table lists qsafe.__all__, and each signature it shows is the function's own (in order)."""
    import inspect
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for name in qsafe.__all__:
        if name != "__version__":
            assert f"`qsafe.{name}" in page, f"docs/api.md does not document qsafe.{name}"
    rows = re.findall(r"^\| `qsafe\.(\w+)\(([^`]*?)\)(?: -> \w+)?` \|", page, flags=re.MULTILINE)
    assert {name for name, _ in rows} >= {"sign", "verify", "load_model", "encrypt", "decrypt"}
    for name, args in rows:
        real = list(inspect.signature(getattr(qsafe, name)).parameters)
        shown = [a.split("=")[0].strip() for a in args.split(",")]
        shown = [a for a in shown if a not in ("*", "…")]
        positions = [real.index(a) if a in real else -1 for a in shown]
        assert -1 not in positions and positions == sorted(positions), (name, shown, real)
