"""Signed model evidence: statements about a model's manifest root digest, and the gate's model.* rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from qsafe import _labels, keys
from qsafe import model_evidence as me
from qsafe.attestation import policy_from_json
from qsafe.errors import AttestationError, FormatError, SignatureError, UsageError
from qsafe.signing import sign
from qsafe.verifying import verify

ROBUST = me.ROBUSTNESS_EVALUATION
PREDICATE = {
    "clean_accuracy": 0.985,
    "seed": 0,
    "results": [
        {"kind": "empirical", "norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.90, "samples": 360},
        {"kind": "empirical", "norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.88, "samples": 360},
        {"kind": "certified", "norm": "l2", "radius": 0.25, "certified_accuracy": 0.93, "samples": 360},
        {"kind": "text", "budget": 3, "attack_success_rate": 0.04, "samples": 500},
    ],
}


def _policy(claims: dict, require: list | None = None, name: str = "robust-test") -> dict:
    return {"format": "qsafe-attestation-policy/v1", "name": name, "freshness": {"accept": ["binding", "challenge"]},
            "require": require or [], "claims": claims}


@pytest.fixture(scope="module")
def evaluator() -> keys.PrivateKey:
    return keys.generate()


@pytest.fixture()
def model(tmp_path: Path) -> tuple[Path, Path, str]:
    root = tmp_path / "model"
    root.mkdir()
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(root / "model.safetensors"))
    key = keys.generate()
    manifest = sign(root, key)
    pub = tmp_path / "signer.pub"
    pub.write_bytes(key.public_key().to_pem())
    return root, pub, "sha256:" + manifest.root_digest


def _pub(tmp_path: Path, key: keys.PrivateKey, name: str = "evaluator.pub") -> Path:
    path = tmp_path / name
    path.write_bytes(key.public_key().to_pem())
    return path


def test_round_trip_claims(evaluator) -> None:
    digest = "sha256:" + "ab" * 32
    data = me.sign_model_evidence(digest, ROBUST, PREDICATE, evaluator, model_name="digits")
    ev = me.verify_model_evidence(data, [evaluator.public_key()], model_digest=digest)
    assert ev.predicate_type == ROBUST and ev.signer == evaluator.public_key().key_id
    assert ev.model_digest == digest and ev.model_name == "digits"
    # named claims: worst case over repeated keys; generic dotted paths alongside
    assert ev.claims["robust_accuracy[linf,0.1]"] == 0.88
    assert ev.claims["certified_accuracy[l2,0.25]"] == 0.93
    assert ev.claims["attack_success_rate[edits,3]"] == 0.04
    assert ev.claims["clean_accuracy"] == 0.985 and ev.claims["results[0].robust_accuracy"] == 0.90
    env = json.loads(data)
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["subject"] == [{"name": "digits", "digest": {"sha256": "ab" * 32}}]
    assert statement["_type"] == _labels.IN_TOTO_STATEMENT_TYPE


def test_generic_predicate_is_flattened(evaluator) -> None:
    digest = "sha256:" + "cd" * 32
    card = {"dp": {"epsilon": 2.9, "delta": 1e-5}, "audits": [{"name": "leak", "passed": True}], "empty": {},
            "none": None}
    ev = me.verify_model_evidence(me.sign_model_evidence(digest, "https://qsafe.dev/model-card/v1", card, evaluator),
                                  evaluator.public_key(), model_digest=digest)
    assert ev.claims == {"dp.epsilon": 2.9, "dp.delta": 1e-5, "audits[0].name": "leak", "audits[0].passed": True}


def test_other_model_refused(evaluator) -> None:
    data = me.sign_model_evidence("sha256:" + "11" * 32, ROBUST, PREDICATE, evaluator)
    with pytest.raises(AttestationError, match="about model sha256:1111"):
        me.verify_model_evidence(data, evaluator.public_key(), model_digest="sha256:" + "22" * 32)


def test_wrong_key_and_other_context_refused(evaluator) -> None:
    digest = "sha256:" + "ab" * 32
    data = me.sign_model_evidence(digest, ROBUST, PREDICATE, evaluator)
    with pytest.raises(SignatureError):
        me.verify_model_evidence(data, keys.generate().public_key(), model_digest=digest)
    # the same statement signed under the attestation-result context does not pass as model evidence
    from qsafe._dsse import pae

    env = json.loads(data)
    payload = base64.b64decode(env["payload"])
    env["signatures"][0]["sig"] = base64.b64encode(evaluator.sign(
        pae(_labels.DSSE_PAYLOAD_TYPE, payload), _labels.MLDSA_CONTEXT_ATTESTATION_RESULT)).decode()
    with pytest.raises(SignatureError):
        me.verify_model_evidence(json.dumps(env).encode(), evaluator.public_key(), model_digest=digest)


def test_bad_inputs(evaluator) -> None:
    with pytest.raises(UsageError):
        me.sign_model_evidence("ab" * 32, ROBUST, PREDICATE, evaluator)  # bare hex
    with pytest.raises(FormatError, match="fraction"):
        me.sign_model_evidence("sha256:" + "ab" * 32, ROBUST,
                               {"results": [{"kind": "empirical", "norm": "linf", "epsilon": 0.1,
                                             "robust_accuracy": 88}]}, evaluator)
    with pytest.raises(FormatError, match="not JSON"):
        me.verify_model_evidence(b"{", evaluator.public_key(), model_digest="sha256:" + "ab" * 32)
    with pytest.raises(FormatError, match="duplicate"):
        me.verify_model_evidence(b'{"payload": "", "payload": ""}', evaluator.public_key(),
                                 model_digest="sha256:" + "ab" * 32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_tamper_is_refused(evaluator, position: int, bit: int) -> None:
    digest = "sha256:" + "ab" * 32
    data = bytearray(me.sign_model_evidence(digest, ROBUST, PREDICATE, evaluator))
    data[position % len(data)] ^= 1 << bit
    try:
        ev = me.verify_model_evidence(bytes(data), evaluator.public_key(), model_digest=digest)
    except (FormatError, SignatureError):
        return
    # a flip in JSON whitespace or an unsigned hint (keyid) may leave the signed statement intact
    assert ev.claims["robust_accuracy[linf,0.1]"] == 0.88 and ev.model_digest == digest


def test_policy_rules(evaluator) -> None:
    digest = "sha256:" + "ab" * 32
    ev = me.verify_model_evidence(me.sign_model_evidence(digest, ROBUST, PREDICATE, evaluator),
                                  evaluator.public_key(), model_digest=digest)
    ok = policy_from_json(_policy({"model.robust_accuracy[linf,0.1]": {"at_least": 0.85, "predicate_type": ROBUST,
                                                                        "signed_by": [ev.signer]},
                                   "model.attack_success_rate[edits,3]": {"at_most": 0.1}}))
    assert me.check_model_evidence(ok, [ev])["model.robust_accuracy[linf,0.1]@<bytes>"] == 0.88
    weak = policy_from_json(_policy({"model.robust_accuracy[linf,0.1]": {"at_least": 0.89}}))
    with pytest.raises(AttestationError) as info:
        me.check_model_evidence(weak, [ev])
    assert info.value.failed_claims == ["model.robust_accuracy[linf,0.1]"] and "0.88 is below 0.89" in str(info.value)
    other_type = policy_from_json(_policy({"model.robust_accuracy[linf,0.1]": {
        "at_least": 0.5, "predicate_type": "https://qsafe.dev/model-card/v1"}}))
    with pytest.raises(AttestationError, match="missing claim"):
        me.check_model_evidence(other_type, [ev])
    other_signer = policy_from_json(_policy({"model.clean_accuracy": {"at_least": 0.5,
                                                                      "signed_by": ["sha256:" + "00" * 32]}}))
    with pytest.raises(AttestationError, match="missing claim"):
        me.check_model_evidence(other_signer, [ev])
    with pytest.raises(UsageError, match="environment"):
        me.check_model_evidence(policy_from_json(_policy({"gpu.arch": {"equals": "HOPPER"}})), [ev])


def test_every_provider_must_satisfy(evaluator) -> None:
    digest = "sha256:" + "ab" * 32
    strong = me.verify_model_evidence(me.sign_model_evidence(digest, ROBUST, {"clean_accuracy": 0.99}, evaluator),
                                      evaluator.public_key(), model_digest=digest)
    weak = me.verify_model_evidence(me.sign_model_evidence(digest, ROBUST, {"clean_accuracy": 0.70}, evaluator),
                                    evaluator.public_key(), model_digest=digest)
    pol = policy_from_json(_policy({"model.clean_accuracy": {"at_least": 0.9}}))
    me.check_model_evidence(pol, [strong])
    with pytest.raises(AttestationError, match="0.7 is below 0.9"):
        me.check_model_evidence(pol, [strong, weak])


def test_qualifiers_only_on_model_rules() -> None:
    with pytest.raises(FormatError, match="model evidence rules"):
        policy_from_json(_policy({"gpu.arch": {"equals": "HOPPER", "predicate_type": ROBUST}}))
    with pytest.raises(FormatError):
        policy_from_json(_policy({"model.x": {"at_least": 1, "signed_by": ["not-a-key-id"]}}))


def test_library_verify_gate(model, evaluator, tmp_path) -> None:
    root, pub, digest = model
    good = tmp_path / "eval.json"
    good.write_bytes(me.sign_model_evidence(digest, ROBUST, PREDICATE, evaluator))
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps(_policy({"model.robust_accuracy[linf,0.1]": {"at_least": 0.85}})))
    result = verify(root, root / "model.sig", pub, policy=__import__("qsafe").VerificationPolicy(),
                    evaluations=[good], evaluator_keys=[evaluator.public_key()], evidence_policy=pol)
    assert result.model_digest == digest and result.model_evidence[0].claims["robust_accuracy[linf,0.1]"] == 0.88
    with pytest.raises(AttestationError, match="missing claim"):
        verify(root, root / "model.sig", pub, policy=__import__("qsafe").VerificationPolicy(), evidence_policy=pol)
