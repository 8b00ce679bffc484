"""Keyless signing and hybrid releases, round-tripped offline against Sigstore's own mock services.

The peer: npm ``@sigstore/mock`` 0.13.0 (Fulcio CA with a CT log, Rekor v1) served on loopback by
``tests/interop/sigstore/server.mjs`` behind three small adapters (Bearer token, base64(PEM) CSR, canonical
``dsse/0.0.1`` Rekor entries; no TSA). Each test module starts its own server and stops it, also on failure.
Every signature is then verified by qsafe AND by ``model_signing verify sigstore --trust_config``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import qsafe
from qsafe import keys
from qsafe.errors import KeyFileError, ModelMismatchError, PolicyError, SignatureError
from qsafe.keyless import TrustRoot
from qsafe.policy import AllOf, AnyOf, Identity, PostQuantum, VerificationPolicy

from .helpers import make_model, write_keypair

pytest.importorskip("sigstore")
pytest.importorskip("model_signing")

SERVER = Path(__file__).resolve().parents[1] / "interop" / "sigstore" / "server.mjs"
IDENTITY = "https://example.test/release-bot"
ISSUER = "https://oidc.qsafe.test"


def _node_ready() -> bool:
    return shutil.which("node") is not None and (SERVER.parent / "node_modules" / "@sigstore" / "mock").is_dir()


@pytest.fixture(scope="module")
def mock_sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Start the local Sigstore on loopback; yield its ClientTrustConfig path; stop it (also on failure)."""
    if not _node_ready():
        pytest.skip("node or tests/interop/sigstore/node_modules missing (make peers installs them)")
    out = tmp_path_factory.mktemp("mock-sigstore")
    proc = subprocess.Popen(["node", str(SERVER), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"mock Sigstore did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield Path(json.loads(line)["trust_config"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _token(identity: str = IDENTITY, issuer: str = ISSUER, lifetime: int = 600, aud: str = "sigstore") -> str:
    """An OIDC identity token as a CI provider would issue it (the mock CA does not check its signature)."""
    def b64u(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64u(json.dumps({"iss": issuer, "sub": identity, "aud": aud, "iat": now, "exp": now + lifetime}).encode())
    sig = b64u(hmac.new(b"test-only", f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def _keyless_policy() -> AllOf:
    return AllOf(VerificationPolicy(allow_classical=True), Identity(IDENTITY, ISSUER))


def _model_signing_verify(model: Path, sig: Path, trust: Path, identity: str = IDENTITY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_signing", "verify", "sigstore", str(model), "--signature",
                           str(sig), "--identity", identity, "--identity_provider", ISSUER, "--trust_config",
                           str(trust)], capture_output=True, text=True, timeout=300, check=False)


def test_keyless_round_trip_api(tmp_path: Path, mock_sigstore: Path) -> None:
    model = make_model(tmp_path / "model")
    root = TrustRoot.from_file(mock_sigstore)
    qsafe.sign(model, sigstore_token=_token(), trust_root=root)
    result = qsafe.verify(model, model / "model.sig", policy=_keyless_policy(), trust_root=root)
    signer = result.signers[0]
    assert signer.kind == "sigstore" and signer.identities == ((IDENTITY, ISSUER),)
    assert signer.log_entries[0].kind == "dsse/0.0.1"
    assert result.manifest.tensors  # qsafe's tensor digests ride in the keyless statement too
    with pytest.raises(PolicyError):
        qsafe.verify(model, model / "model.sig", trust_root=root,
                     policy=AllOf(VerificationPolicy(allow_classical=True), Identity("https://x.test/bot", ISSUER)))
    with pytest.raises(SignatureError):  # Sigstore's production root does not trust the mock CA
        qsafe.verify(model, model / "model.sig", policy=_keyless_policy())
    r = _model_signing_verify(model, model / "model.sig", mock_sigstore)
    assert r.returncode == 0, r.stdout + r.stderr
    (model / "config.json").write_text('{"hidden": 9}\n')
    with pytest.raises(ModelMismatchError):
        qsafe.verify(model, model / "model.sig", policy=_keyless_policy(), trust_root=root)


def test_keyless_cli(tmp_path: Path, mock_sigstore: Path, cli: Any) -> None:
    model = make_model(tmp_path / "model")
    (tmp_path / "token").write_text(_token() + "\n")
    r = cli(["sign", model, "--sigstore", "--identity-token-file", tmp_path / "token", "--trust-config",
             mock_sigstore, "--json"])
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["keyless"] is True
    r = cli(["verify", model, "--identity", IDENTITY, "--issuer", ISSUER, "--trust-config", mock_sigstore,
             "--allow-classical"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli(["inspect", model / "model.sig"])
    assert f"SANs uri:{IDENTITY}" in r.stdout and f"OIDC issuer {ISSUER}" in r.stdout
    r = cli(["sign", tmp_path / "model", "--sigstore", "--trust-config", mock_sigstore, "--signature",
             tmp_path / "env.sig"], env={"SIGSTORE_IDENTITY_TOKEN": _token()})
    assert r.exit_code == 0, r.stderr
    r = cli(["sign", model, "--sigstore", "--trust-config", mock_sigstore, "--signature", tmp_path / "x.sig"],
            env={"SIGSTORE_IDENTITY_TOKEN": ""})
    assert r.exit_code == 2 and "OIDC identity token" in r.stderr
    (tmp_path / "expired").write_text(_token(lifetime=-60))
    r = cli(["sign", model, "--sigstore", "--identity-token-file", tmp_path / "expired", "--trust-config",
             mock_sigstore, "--signature", tmp_path / "x.sig"])
    assert r.exit_code == 4 and "not usable" in r.stderr and not (tmp_path / "x.sig").exists()


def test_hybrid_release(tmp_path: Path, mock_sigstore: Path, cli: Any) -> None:
    """One `qsafe sign`: a keyless bundle (model.sig) and an ML-DSA bundle (model.pq.sig) over one statement."""
    model = make_model(tmp_path / "model")
    priv, pub = write_keypair(keys.generate("ml-dsa-65"), tmp_path / "release")
    (tmp_path / "token").write_text(_token())
    r = cli(["sign", model, "--key", priv, "--sigstore", "--identity-token-file", tmp_path / "token",
             "--trust-config", mock_sigstore])
    assert r.exit_code == 0 and r.stdout.split() == [str(model / "model.sig"), str(model / "model.pq.sig")]
    keyless_doc = json.loads((model / "model.sig").read_text())
    pq_doc = json.loads((model / "model.pq.sig").read_text())
    assert keyless_doc["dsseEnvelope"]["payload"] == pq_doc["dsseEnvelope"]["payload"]  # the same statement
    assert pq_doc["verificationMaterial"]["publicKey"]["keyDetails"] == "ML_DSA_65"
    statement = json.loads(base64.b64decode(pq_doc["dsseEnvelope"]["payload"]))
    assert {"model.sig", "model.pq.sig"} <= set(statement["predicate"]["serialization"]["ignore_paths"])
    both = ["verify", model, "--key", pub, "--identity", IDENTITY, "--issuer", ISSUER, "--trust-config",
            mock_sigstore]
    r = cli([*both, "--json"])
    assert r.exit_code == 0, r.stderr
    kinds = sorted((s["kind"], s["post_quantum"]) for s in json.loads(r.stdout)["signers"])
    assert kinds == [("key", True), ("sigstore", False)]
    r = cli(["verify", model, "--key", pub, "--trust-config", mock_sigstore, "--require", "pq", "--require",
             f"sigstore:{IDENTITY}@{ISSUER}"])
    assert r.exit_code == 0, r.stderr
    r = cli(["verify", model, "--key", pub])  # the PQ half alone, as a PQ-only verifier would
    assert r.exit_code == 0, r.stderr
    r = cli(["verify", model, "--key", pub, "--require", f"sigstore:{IDENTITY}@{ISSUER}"])
    assert r.exit_code == 10 and "does not verify" in r.stderr  # production root: the mock CA is not trusted
    r = cli(["verify", model, "--identity", IDENTITY, "--issuer", ISSUER, "--trust-config", mock_sigstore,
             "--require", "pq"])
    assert r.exit_code == 11 and "post-quantum" in r.stderr
    # stock model-signing verifies the Sigstore half on its own
    ms = _model_signing_verify(model, model / "model.sig", mock_sigstore)
    assert ms.returncode == 0, ms.stdout + ms.stderr
    # stripping either half fails a release that requires both
    stripped = Path(shutil.copytree(model, tmp_path / "no-keyless"))
    (stripped / "model.sig").unlink()
    r = cli(["verify", stripped, "--key", pub, "--trust-config", mock_sigstore, "--require", "pq", "--require",
             f"sigstore:{IDENTITY}@{ISSUER}"])
    assert r.exit_code == 11 and "no Sigstore keyless signature" in r.stderr
    (model / "model.pq.sig").unlink()
    r = cli([*both, "--require", "pq"])
    assert r.exit_code == 11 and "post-quantum" in r.stderr


def test_hybrid_release_api_with_ml_dsa_certificate(tmp_path: Path, mock_sigstore: Path) -> None:
    from qsafe import pki

    model = make_model(tmp_path / "model")
    ca_key, signer_key = keys.generate("ml-dsa-87"), keys.generate("ml-dsa-65")
    ca = pki.create_ca(ca_key, "CN=qsafe test release CA")
    cert = pki.issue_signing_certificate(ca, ca_key, signer_key.public_key(), "CN=release signer",
                                         sans=["email:release@example.test"])
    root = TrustRoot.from_file(mock_sigstore)
    qsafe.sign(model, signer_key, certificates=[cert, ca], sigstore_token=_token(), trust_root=root)
    policy = AllOf(PostQuantum(), Identity(IDENTITY, ISSUER))
    result = qsafe.verify(model, [model / "model.sig", model / "model.pq.sig"], policy=policy,
                          certificate_roots=[ca], trust_root=root)
    assert {s.kind for s in result.signers} == {"sigstore", "certificate"}
    assert result.post_quantum and result.algorithm == "ml-dsa-65"
    either = AnyOf(Identity(IDENTITY, ISSUER), PostQuantum())
    assert qsafe.verify(model, model / "model.sig", policy=either, trust_root=root).signers[0].kind == "sigstore"
    assert qsafe.verify(model, model / "model.pq.sig", policy=either, certificate_roots=[ca]).post_quantum
    # every given bundle must verify: a keyless signature by an identity the policy does not name is refused,
    # even when another branch of the policy would be satisfied
    with pytest.raises(PolicyError, match="not by https://other.test/bot"):
        qsafe.verify(model, [model / "model.sig", model / "model.pq.sig"], certificate_roots=[ca], trust_root=root,
                     policy=AnyOf(Identity("https://other.test/bot", ISSUER), PostQuantum()))


def test_wrong_audience_token_is_refused(tmp_path: Path, mock_sigstore: Path) -> None:
    model = make_model(tmp_path / "model")
    with pytest.raises(KeyFileError, match="not usable"):
        qsafe.sign(model, sigstore_token=_token(aud="someone-else"), trust_root=TrustRoot.from_file(mock_sigstore))
    assert not (model / "model.sig").exists()
