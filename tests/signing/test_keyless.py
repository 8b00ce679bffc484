"""Sigstore keyless verification, fully offline, with the real sigstore library and real public bundles.

- model-signing's published keyless fixtures (Sigstore public-good, Rekor v1 ``dsse/0.0.1``, 2025) verify with
  the production trust root that qsafe ships and pins; the OMS ``valid/sigstore`` vector is one of them.
- sigstore-conformance's Rekor v2 bundles (``hashedrekord/0.0.2`` over DSSE, staging) verify with their own
  trust root through ``--trust-config``; their broken variants are refused.
Provenance: tests/vectors/model-signing/PROVENANCE.md, tests/vectors/sigstore/PROVENANCE.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qsafe
from qsafe import keyless
from qsafe.errors import FormatError, ModelMismatchError, PolicyError, SignatureError, UsageError
from qsafe.policy import AllOf, Identity, VerificationPolicy

pytest.importorskip("sigstore")

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
UPSTREAM = VECTORS / "model-signing" / "upstream"
CONFORMANCE = VECTORS / "sigstore" / "conformance"
OMS = VECTORS / "oms-vectors" / "v1.0"
ID, ISSUER = "stefanb@us.ibm.com", "https://sigstore.verify.ibm.com/oauth2"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
          "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ACTIONS = "https://token.actions.githubusercontent.com"
KEYLESS = AllOf(VerificationPolicy(allow_classical=True), Identity(ID, ISSUER))
VERSIONS = ["v0.3.1-sigstore", "v1.0.0-sigstore", "v1.0.1-sigstore", "v1.1.0-sigstore"]


def _model(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(UPSTREAM / name, tmp_path / name))


@pytest.mark.parametrize("name", VERSIONS)
def test_public_keyless_bundles_verify_offline(tmp_path: Path, name: str) -> None:
    model = _model(tmp_path, name)
    result = qsafe.verify(model, model / "model.sig", policy=KEYLESS, ignore_paths=["ignore-me"])
    signer = result.signers[0]
    assert signer.kind == "sigstore" and signer.algorithm == "ecdsa-p256" and not signer.post_quantum
    assert signer.identities == ((ID, ISSUER),)
    assert signer.certificate is not None and signer.certificate.sans == (f"email:{ID}",)
    assert signer.certificate.oidc_issuer == ISSUER
    entry = signer.log_entries[0]
    assert entry.kind == "dsse/0.0.1" and entry.integrated_time is not None and entry.log_index > 0
    (model / "signme-2").write_bytes(b"tampered")
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model, model / "model.sig", policy=KEYLESS, ignore_paths=["ignore-me"])
    assert exc.value.changed == ["signme-2"]


def test_oms_sigstore_vector(tmp_path: Path) -> None:
    model = _model(tmp_path, "v1.1.0-sigstore")
    qsafe.verify(model, OMS / "valid/sigstore.bundle.json", policy=KEYLESS, ignore_paths=["model.sig"])


def test_cli_keyless(tmp_path: Path, cli: Any) -> None:
    model = _model(tmp_path, "v1.1.0-sigstore")
    base = ["verify", model, "--ignore-path", "ignore-me"]
    r = cli([*base, "--identity", ID, "--issuer", ISSUER, "--allow-classical"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli([*base, "--identity", ID, "--issuer", ISSUER, "--allow-classical", "--json"])
    report = json.loads(r.stdout)
    assert report["signers"][0]["kind"] == "sigstore"
    assert report["signers"][0]["log_entries"][0]["log_index"] == 598151086
    r = cli([*base, "--identity", ID, "--issuer", ISSUER])
    assert r.exit_code == 11 and "classical-only" in r.stderr  # a keyless signature is ECDSA: PQ required
    r = cli([*base, "--identity", "mallory@example.com", "--issuer", ISSUER, "--allow-classical"])
    assert r.exit_code == 11 and "made by email:stefanb@us.ibm.com" in r.stderr
    r = cli([*base, "--identity", ID, "--issuer", "https://accounts.google.com", "--allow-classical"])
    assert r.exit_code == 11
    r = cli([*base, "--identity", ID, "--allow-classical"])
    assert r.exit_code == 2 and "--issuer" in r.stderr
    r = cli([*base, "--allow-classical"])
    assert r.exit_code == 2 and "no trust input" in r.stderr
    r = cli([*base, "--key", UPSTREAM / "keys/certificate/signing-key-pub.pem", "--allow-classical"])
    assert r.exit_code == 2 and "expected identity" in r.stderr
    r = cli([*base, "--require", f"sigstore:{ID}@{ISSUER}", "--allow-classical"])
    assert r.exit_code == 0, r.stderr


def test_inspect_shows_certificate_and_log_entry(cli: Any) -> None:
    r = cli(["inspect", UPSTREAM / "v1.0.1-sigstore" / "model.sig"])
    assert r.exit_code == 0
    assert "SANs email:stefanb@us.ibm.com" in r.stdout and f"OIDC issuer {ISSUER}" in r.stdout
    assert "log entry: index " in r.stdout and "(dsse/0.0.1), integrated 2025-10-07" in r.stdout
    data = json.loads(cli(["inspect", UPSTREAM / "v1.0.1-sigstore" / "model.sig", "--json"]).stdout)
    assert data["signer"]["kind"] == "sigstore" and data["signer"]["certificates"][0]["issuer"].startswith(
        "CN=sigstore-intermediate")


def _doc(name: str = "v1.0.1-sigstore") -> dict[str, Any]:
    return json.loads((UPSTREAM / name / "model.sig").read_text())


def _flip_b64(value: str, index: int = 40) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tampered_docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    d = _doc()
    d["dsseEnvelope"]["signatures"][0]["sig"] = _flip_b64(d["dsseEnvelope"]["signatures"][0]["sig"], 20)
    out.append(("signature", d))
    d = _doc()
    statement = json.loads(base64.b64decode(d["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    d["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    out.append(("payload", d))
    d = _doc()
    d["verificationMaterial"]["certificate"]["rawBytes"] = _doc("v1.1.0-sigstore")["verificationMaterial"][
        "certificate"]["rawBytes"]
    out.append(("another certificate", d))
    d = _doc()
    entry = d["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)
    out.append(("integrated time", d))
    d = _doc()
    proof = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"][0] = _flip_b64(proof["hashes"][0], 3)
    out.append(("inclusion proof", d))
    return out


@pytest.mark.parametrize("what,doc", _tampered_docs(), ids=[w for w, _ in _tampered_docs()])
def test_tampered_keyless_bundle_is_refused(tmp_path: Path, what: str, doc: dict[str, Any]) -> None:
    model = _model(tmp_path, "v1.0.1-sigstore")
    with pytest.raises(SignatureError):
        qsafe.verify(model, json.dumps(doc).encode(), policy=KEYLESS, ignore_paths=["ignore-me", "model.sig"])


def test_keyless_needs_an_identity(tmp_path: Path) -> None:
    model = _model(tmp_path, "v1.0.1-sigstore")
    with pytest.raises(UsageError, match="expected identity"):
        qsafe.verify(model, model / "model.sig", policy=VerificationPolicy(allow_classical=True))
    with pytest.raises(UsageError):
        Identity(ID, "")


# --- Rekor v2 (hashedrekord/0.0.2 over DSSE) through a private trust root -----------------------------------------
def test_rekor_v2_bundle_verifies_with_its_trust_root() -> None:
    root = keyless.TrustRoot.from_file(CONFORMANCE / "rekor2-dsse-happy-path" / "trusted_root.json")
    raw = (CONFORMANCE / "rekor2-dsse-happy-path" / "bundle.sigstore.json").read_bytes()
    result = keyless.verify_keyless(raw, [Identity(BEACON, ACTIONS)], root, document=json.loads(raw))
    assert result.payload_type == "application/vnd.in-toto+json"
    assert json.loads(result.payload)["predicateType"] == "https://slsa.dev/provenance/v1"
    assert result.log_entries[0].kind == "hashedrekord/0.0.2" and result.log_entries[0].integrated_time is None
    with pytest.raises(PolicyError):
        keyless.verify_keyless(raw, [Identity(BEACON, "https://accounts.google.com")], root)
    with pytest.raises(SignatureError):  # the production root does not trust staging
        keyless.verify_keyless(raw, [Identity(BEACON, ACTIONS)], keyless.TrustRoot.production())


def test_rekor_v2_through_the_cli_refuses_a_non_model_statement(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "m").mkdir()
    r = cli(["verify", tmp_path / "m", "--signature", CONFORMANCE / "rekor2-dsse-happy-path/bundle.sigstore.json",
             "--trust-config", CONFORMANCE / "rekor2-dsse-happy-path/trusted_root.json", "--identity", BEACON,
             "--issuer", ACTIONS, "--allow-classical"])
    assert r.exit_code == 3 and "not https://model_signing/signature/v1.0" in r.stderr


@pytest.mark.parametrize("case", ["rekor2-dsse-invalid-sig_fail", "rekor2-dsse-mismatch-envelope_fail",
                                  "rekor2-dsse-mismatch-sig_fail"])
def test_rekor_v2_conformance_failures(case: str) -> None:
    root = keyless.TrustRoot.from_file(CONFORMANCE / case / "trusted_root.json")
    with pytest.raises(SignatureError):
        keyless.verify_keyless((CONFORMANCE / case / "bundle.sigstore.json").read_bytes(),
                               [Identity(BEACON, ACTIONS)], root)


# --- the trust root ------------------------------------------------------------------------------------------------
def test_production_root_is_pinned_and_is_sigstores() -> None:
    import sigstore

    shipped = Path(keyless.__file__).parent / "_sigstore" / "trusted_root.production.json"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == keyless.PRODUCTION_TRUSTED_ROOT_SHA256
    wheel = Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    assert wheel.read_bytes() == shipped.read_bytes(), "sigstore's embedded production root changed: re-pin it"
    assert keyless.TrustRoot.production().document == shipped.read_bytes()


def test_altered_production_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    keyless._production.cache_clear()
    monkeypatch.setattr(keyless, "PRODUCTION_TRUSTED_ROOT_SHA256", "0" * 64)
    try:
        with pytest.raises(FormatError, match="not the pinned"):
            keyless.TrustRoot.production()
    finally:
        keyless._production.cache_clear()


def test_user_tuf_cache_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poisoned sigstore cache (what offline=True would trust) changes nothing: qsafe reads only its pin."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for base in (tmp_path / "cache", tmp_path / "data"):
        poisoned = base / "sigstore-python" / "tuf" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        poisoned.mkdir(parents=True)
        (poisoned / "trusted_root.json").write_text(
            (CONFORMANCE / "rekor2-dsse-happy-path" / "trusted_root.json").read_text())
    model = _model(tmp_path, "v1.0.1-sigstore")
    qsafe.verify(model, model / "model.sig", policy=KEYLESS, ignore_paths=["ignore-me"])


@pytest.mark.parametrize("content,error", [
    (b"{}", FormatError), (b"not json", FormatError),
    (b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": 5}', FormatError),
])
def test_bad_trust_config(tmp_path: Path, content: bytes, error: type[Exception], cli: Any) -> None:
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    with pytest.raises(error):
        keyless.TrustRoot.from_file(path)
    model = _model(tmp_path, "v1.0.1-sigstore")
    r = cli(["verify", model, "--identity", ID, "--issuer", ISSUER, "--allow-classical", "--trust-config", path])
    assert r.exit_code == 3


def test_verify_imports_sigstore_only_for_keyless(tmp_path: Path) -> None:
    """`qsafe verify` of a key bundle never loads the sigstore library (nor pydantic); a keyless bundle does."""
    from qsafe import keys

    from .helpers import make_model, write_keypair

    model = make_model(tmp_path / "model")
    key = keys.generate("ml-dsa-65")
    _, pub = write_keypair(key, tmp_path / "k")
    qsafe.sign(model, key)
    keyless_model = _model(tmp_path, "v1.0.1-sigstore")
    code = (
        "import sys\n"
        "from qsafe.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'sigstore', 'pydantic', 'rekor_types', "
        "'model_signing', 'torch', 'tenseal'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = [sys.executable, "-c", code]
    out = subprocess.run([*run, "verify", str(model), "--key", str(pub)], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert out.returncode == 0 and "LOADED []" in out.stdout, out.stderr
    out = subprocess.run([*run, "verify", str(keyless_model), "--identity", ID, "--issuer", ISSUER,
                          "--allow-classical", "--ignore-path", "ignore-me"], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert out.returncode == 0 and "'sigstore'" in out.stdout and "torch" not in out.stdout, out.stderr


def test_speculative_hashing_stops_when_verification_fails(tmp_path: Path) -> None:
    """The model is hashed while the keyless bundle is checked; a refused bundle leaves no hashing thread."""
    import threading

    model = _model(tmp_path, "v1.1.0-sigstore")
    with pytest.raises(PolicyError):
        qsafe.verify(model, model / "model.sig", ignore_paths=["ignore-me"],
                     policy=AllOf(VerificationPolicy(allow_classical=True), Identity("mallory@example.com", ISSUER)))
    assert not [t for t in threading.enumerate() if t.name == "qsafe-hash-ahead"]
    doc = _doc("v1.1.0-sigstore")
    doc["dsseEnvelope"]["signatures"][0]["sig"] = _flip_b64(doc["dsseEnvelope"]["signatures"][0]["sig"], 9)
    with pytest.raises(SignatureError):
        qsafe.verify(model, json.dumps(doc).encode(), policy=KEYLESS, ignore_paths=["ignore-me", "model.sig"])
    assert not [t for t in threading.enumerate() if t.name == "qsafe-hash-ahead"]
