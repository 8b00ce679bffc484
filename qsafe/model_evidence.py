"""Signed model evidence: ML-DSA-signed in-toto Statements about a model, checked by the deploy gate.

A piece of model evidence is a DSSE envelope whose payload is an in-toto Statement v1 with one subject, the
model's signed **manifest root digest**, and any predicate type (a robustness evaluation, a model card, a DP
certificate, an audit). The signature is ML-DSA (or a composite) over the DSSE PAE with the context
``MLDSA_CONTEXT_MODEL_EVIDENCE``, so it can never pass for a model bundle or an attestation result.

Verification yields **claims**: the predicate flattened to named scalar values (``dp.epsilon``,
``audits[0].passed``), plus named claims from an extractor registered for the predicate type (the robustness
evaluation gives ``robust_accuracy[linf,0.1]``, ``certified_accuracy[l2,0.25]`` ...). Each claim is tagged with
the statement's predicate type and signer key id. Attestation policies name them as ``model.<claim>`` rules
(see :mod:`qsafe.attestation.policy`); :func:`check_model_evidence` evaluates those rules.

Typical use::

    from qsafe import model_evidence as me
    data = me.sign_model_evidence("sha256:" + root, me.ROBUSTNESS_EVALUATION, predicate, key)
    ev = me.verify_model_evidence(data, [evaluator_public_key], model_digest="sha256:" + root)
    ev.claims["robust_accuracy[linf,0.1]"]
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsafe import _dsse, _labels, _limits
from qsafe import _json as _hardened_json
from qsafe.errors import AttestationError, FormatError, SignatureError, UsageError

if TYPE_CHECKING:
    from qsafe.attestation.policy import Policy
    from qsafe.keys import PrivateKey, PublicKey

__all__ = [
    "ROBUSTNESS_EVALUATION",
    "ModelEvidence",
    "check_model_evidence",
    "claims_of",
    "evaluate_model_rules",
    "flatten_predicate",
    "gather_model_evidence",
    "model_digest_of",
    "model_rules",
    "parse_model_evidence",
    "read_predicate",
    "register_claim_extractor",
    "require_model_only",
    "sign_model_evidence",
    "statement_for",
    "verify_model_evidence",
]

ROBUSTNESS_EVALUATION = _labels.ROBUSTNESS_EVALUATION_PREDICATE_TYPE
PREFIX = _labels.MODEL_EVIDENCE_CLAIM_PREFIX
MAX_EVIDENCE_BYTES = _limits.MODEL_EVIDENCE_MAX_BYTES
_MAX_CLAIMS = _limits.MODEL_EVIDENCE_MAX_CLAIMS
_MAX_DEPTH = _limits.MODEL_EVIDENCE_MAX_DEPTH
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # fullmatch: `$` would accept a final newline
_STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})

Scalar = str | int | float | bool
ClaimExtractor = Callable[[Mapping[str, Any]], dict[str, Scalar]]


@dataclass(frozen=True)
class ModelEvidence:
    """A verified statement about a model.

    Attributes:
        predicate_type: the statement's predicate type URI.
        predicate: the predicate (parsed JSON).
        signer: key id (``sha256:…``) of the evaluator key that verified the signature.
        model_digest: ``sha256:<hex>``, the subject (the model's manifest root digest).
        model_name: the subject's name (informational).
        claims: named scalar values (generic dotted paths and the predicate type's named claims).
        source: where it came from (a file name, or ``<bytes>``).
        statement: the whole statement.
    """

    predicate_type: str
    predicate: dict[str, Any]
    signer: str
    model_digest: str
    model_name: str
    claims: dict[str, Scalar]
    source: str = "<bytes>"
    statement: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (for reports and signed appraisal results)."""
        return {"predicateType": self.predicate_type, "signer": self.signer, "modelDigest": self.model_digest,
                "source": self.source, "claims": dict(sorted(self.claims.items()))}


# --- claims -----------------------------------------------------------------------------------------------------
_EXTRACTORS: dict[str, ClaimExtractor] = {}


def register_claim_extractor(predicate_type: str, extractor: ClaimExtractor) -> None:
    """Give a predicate type named claims beyond the generic dotted paths (extractor names win on collision).

    Args:
        predicate_type: the predicate type URI.
        extractor: ``predicate -> {name: scalar}``; it must not raise on well-formed predicates of its type and
            should raise :class:`FormatError` on malformed ones.
    """
    _EXTRACTORS[predicate_type] = extractor


def flatten_predicate(predicate: Any) -> dict[str, Scalar]:
    """Flatten JSON into dotted paths of scalars: ``{"a": {"b": [1]}}`` -> ``{"a.b[0]": 1}``.

    Nulls, empty objects and empty lists produce no claim.

    Raises:
        FormatError: nesting deeper than 32 levels, or more than 100,000 values.
    """
    out: dict[str, Scalar] = {}

    def walk(value: Any, path: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise FormatError(f"model evidence predicate nests deeper than {_MAX_DEPTH} levels at {path}")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, (str, int, float, bool)) and path:
            if len(out) >= _MAX_CLAIMS:
                raise FormatError(f"model evidence predicate has more than {_MAX_CLAIMS} values")
            out[path] = value

    walk(predicate, "", 0)
    return out


def claims_of(predicate_type: str, predicate: Mapping[str, Any]) -> dict[str, Scalar]:
    """The claims of a predicate: generic dotted paths, then the registered extractor's named claims.

    Raises:
        FormatError: the predicate is malformed for its type.
    """
    claims = flatten_predicate(dict(predicate))
    extractor = _EXTRACTORS.get(predicate_type)
    if extractor is not None:
        claims.update(extractor(predicate))
    return claims


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(f"robustness evaluation: {what} must be a finite number, not {value!r}")
    return float(value)


def _fraction(value: Any, what: str) -> float:
    number = _num(value, what)
    if not 0.0 <= number <= 1.0:
        raise FormatError(f"robustness evaluation: {what} must be a fraction in [0, 1], not {value!r}")
    return number


def _g(value: float) -> str:
    return format(value, "g")


def _robustness_claims(predicate: Mapping[str, Any]) -> dict[str, Scalar]:
    """Named claims of ``https://qsafe.dev/robustness-evaluation/v1`` (worst case when a key repeats)."""
    out: dict[str, Scalar] = {}

    def worst(name: str, value: float, higher_is_worse: bool = False) -> None:
        old = out.get(name)
        if old is None or (value > float(old) if higher_is_worse else value < float(old)):
            out[name] = value

    if "clean_accuracy" in predicate:
        out["clean_accuracy"] = _fraction(predicate["clean_accuracy"], "clean_accuracy")
    results = predicate.get("results", [])
    if not isinstance(results, list):
        raise FormatError("robustness evaluation: results must be a list")
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            raise FormatError(f"robustness evaluation: results[{i}] must be an object")
        kind = res.get("kind")
        if kind == "empirical":
            name = f"robust_accuracy[{res.get('norm')},{_g(_num(res.get('epsilon'), f'results[{i}].epsilon'))}]"
            worst(name, _fraction(res.get("robust_accuracy"), f"results[{i}].robust_accuracy"))
        elif kind == "certified":
            name = f"certified_accuracy[{res.get('norm')},{_g(_num(res.get('radius'), f'results[{i}].radius'))}]"
            worst(name, _fraction(res.get("certified_accuracy"), f"results[{i}].certified_accuracy"))
        elif kind == "text":
            budget = _g(_num(res.get("budget"), f"results[{i}].budget"))
            worst(f"attack_success_rate[edits,{budget}]",
                  _fraction(res.get("attack_success_rate"), f"results[{i}].attack_success_rate"), True)
    return out


register_claim_extractor(ROBUSTNESS_EVALUATION, _robustness_claims)


# --- making and reading envelopes -------------------------------------------------------------------------------
def _check_digest(model_digest: str) -> str:
    if not isinstance(model_digest, str) or not _DIGEST.fullmatch(model_digest):
        raise UsageError(f"a model digest is 'sha256:' and 64 lower-case hex digits, not {model_digest!r}",
                         hint="take it from `qsafe sign --json` (root_digest) or LoadedModel.model_digest")
    return model_digest


def statement_for(model_digest: str, predicate_type: str, predicate: Mapping[str, Any], *,
                  model_name: str = "model") -> dict[str, Any]:
    """The in-toto Statement v1 about the model with this manifest root digest.

    Raises:
        UsageError: the digest is not ``sha256:<64 hex>``, or the predicate type is empty.
    """
    _check_digest(model_digest)
    if not predicate_type:
        raise UsageError("a predicate type (a URI) is required")
    return {"_type": _labels.IN_TOTO_STATEMENT_TYPE,
            "subject": [{"name": model_name, "digest": {"sha256": model_digest.split(":", 1)[1]}}],
            "predicateType": predicate_type, "predicate": dict(predicate)}


def sign_model_evidence(model_digest: str, predicate_type: str, predicate: Mapping[str, Any], key: PrivateKey, *,
                        model_name: str = "model") -> bytes:
    """Sign a statement about a model; returns the DSSE envelope as JSON bytes (write it with ``_io``).

    Args:
        model_digest: ``sha256:<hex>`` manifest root digest of the model.
        predicate_type: predicate type URI (constants in ``qsafe._labels``).
        predicate: the predicate (JSON-serialisable; NaN/Infinity refused).
        key: the evaluator's ML-DSA (or composite) private key.
        model_name: the subject's name.

    Raises:
        UsageError: bad digest or predicate type. InvalidInputError: the predicate is not finite JSON.
    """
    from qsafe.errors import InvalidInputError

    statement = statement_for(model_digest, predicate_type, predicate, model_name=model_name)
    claims_of(predicate_type, statement["predicate"])  # refuse what a verifier would refuse
    try:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the predicate is not finite JSON: {exc}") from exc
    return _dsse.sign_envelope(payload, key, _labels.MLDSA_CONTEXT_MODEL_EVIDENCE)


def _json(data: bytes, what: str) -> Any:
    # the one hardened reader: duplicate keys, NaN, huge numbers, deep nesting, lone surrogates refused
    return _hardened_json.loads(data, what, max_bytes=MAX_EVIDENCE_BYTES)


@dataclass(frozen=True)
class _Envelope:
    envelope: _dsse.Envelope
    statement: dict[str, Any]


def _read(evaluation: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    from qsafe._files import read_regular

    if isinstance(evaluation, bytes):
        return evaluation, "<bytes>"
    path = Path(evaluation)  # a regular file only (never blocks on a FIFO), size-capped
    return read_regular(path, f"model evidence {path}", max_bytes=MAX_EVIDENCE_BYTES), path.name


def _parse(data: bytes) -> _Envelope:
    env = _dsse.parse_envelope(data, "model evidence", max_bytes=MAX_EVIDENCE_BYTES)
    statement = _json(env.payload, "model evidence statement")
    _check_statement(statement)
    return _Envelope(env, statement)


def _check_statement(st: Any) -> None:
    if not isinstance(st, dict) or set(st) != _STATEMENT_FIELDS:
        raise FormatError("model evidence payload is not an in-toto Statement (_type, subject, predicateType, "
                          "predicate)")
    if st["_type"] != _labels.IN_TOTO_STATEMENT_TYPE:
        raise FormatError(f"model evidence statement _type is {st['_type']!r}")
    subject = st["subject"]
    if not (isinstance(subject, list) and len(subject) == 1 and isinstance(subject[0], dict)
            and isinstance(subject[0].get("digest"), dict) and isinstance(subject[0]["digest"].get("sha256"), str)):
        raise FormatError("model evidence must have exactly one subject with a sha256 digest (the model)")
    if not isinstance(st["predicateType"], str) or not st["predicateType"]:
        raise FormatError("model evidence predicateType must be a non-empty string")
    if not isinstance(st["predicate"], dict):
        raise FormatError("model evidence predicate must be a JSON object")


def parse_model_evidence(evaluation: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """Read and parse model evidence WITHOUT verifying it (for inspection); returns the statement.

    Raises:
        FormatError: unreadable, too large, or not a DSSE envelope holding an in-toto Statement.
    """
    data, _ = _read(evaluation)
    return _parse(data).statement


def _public_keys(keys: PublicKey | str | os.PathLike[str] | Iterable[Any]) -> list[PublicKey]:
    from qsafe.keys import PublicKey, load_public_keys

    items = [keys] if isinstance(keys, (PublicKey, str, os.PathLike)) else list(keys)
    out: list[PublicKey] = []
    for item in items:
        out.extend([item] if isinstance(item, PublicKey) else load_public_keys(Path(item)))
    if not out:
        raise UsageError("no evaluator key was given", hint="pass --evaluator-key PUB")
    return out


def verify_model_evidence(evaluation: str | os.PathLike[str] | bytes,
                          keys: PublicKey | str | os.PathLike[str] | Iterable[Any], *,
                          model_digest: str) -> ModelEvidence:
    """Verify model evidence: the signature with one of ``keys``, then that its subject is this model.

    Args:
        evaluation: the envelope file or its bytes.
        keys: trusted evaluator public key(s) (objects or ``.pub`` paths / directories).
        model_digest: ``sha256:<hex>`` of the model being gated.

    Returns:
        The verified :class:`ModelEvidence` with its claims.

    Raises:
        FormatError: malformed (exit 3). SignatureError: no given key verifies it (10).
        AttestationError: it is about another model (15). UsageError: bad digest or no key.
    """
    _check_digest(model_digest)
    data, source = _read(evaluation)
    env = _parse(data)
    signer = _dsse.verify_envelope(env.envelope, _public_keys(keys), _labels.MLDSA_CONTEXT_MODEL_EVIDENCE)
    if signer is None:
        raise SignatureError(f"model evidence {source}: the signature does not verify with the given evaluator "
                             "key(s)", hint="pass the evaluator's public key with --evaluator-key")
    st = env.statement
    subject = "sha256:" + st["subject"][0]["digest"]["sha256"]
    if subject != model_digest:
        raise AttestationError(f"model evidence {source} is about model {subject}, not this model {model_digest}",
                               failed_claims=[f"evaluation {source}"])
    name = st["subject"][0].get("name")
    return ModelEvidence(predicate_type=st["predicateType"], predicate=st["predicate"], signer=signer.key_id,
                         model_digest=subject, model_name=name if isinstance(name, str) else "",
                         claims=claims_of(st["predicateType"], st["predicate"]), source=source, statement=st)


def gather_model_evidence(evaluations: Sequence[Any], keys: Any, model_digest: str
                          ) -> tuple[list[ModelEvidence], list[str]]:
    """Verify each evaluation for the gate: the verified ones, and one deny line per refused one.

    A signature that does not verify or a subject that is another model is a deny line (its claims do not count);
    a malformed file still raises :class:`FormatError` (nothing could be checked).
    """
    verified: list[ModelEvidence] = []
    refused: list[str] = []
    if evaluations and keys is None:
        raise UsageError("model evidence needs the evaluator's public key", hint="pass --evaluator-key PUB")
    for item in evaluations:
        if isinstance(item, ModelEvidence):
            if item.model_digest != model_digest:
                refused.append(f"evaluation {item.source}: about model {item.model_digest}, not {model_digest}")
            else:
                verified.append(item)
            continue
        try:
            verified.append(verify_model_evidence(item, keys, model_digest=model_digest))
        except SignatureError as exc:
            refused.append(f"evaluation {_name(item)}: {str(exc).split(': ', 1)[-1]} (unsigned or another signer)")
        except AttestationError as exc:
            refused.append(f"evaluation {_name(item)}: {exc}")
    return verified, refused


def _name(item: Any) -> str:
    return "<bytes>" if isinstance(item, bytes) else Path(item).name


# --- policy rules -----------------------------------------------------------------------------------------------
def model_rules(policy: Policy) -> dict[str, dict[str, Any]]:
    """The policy's ``model.*`` rules, keyed by claim name without the prefix."""
    return {k[len(PREFIX):]: v for k, v in policy.claims.items() if k.startswith(PREFIX)}


def evaluate_model_rules(policy: Policy, evidence: Sequence[ModelEvidence], at: dt.datetime | None = None
                         ) -> tuple[list[str], dict[str, Any]]:
    """Evaluate the policy's ``model.*`` rules over verified evidence.

    Returns:
        (failed lines, the claim values seen, keyed ``model.<name>@<source>``). A rule whose claim no
        qualifying statement provides fails; when several provide it, every one must satisfy the rule.
    """
    from qsafe.attestation.evidence import utcnow
    from qsafe.attestation.policy import evaluate_rule

    when = at or utcnow()
    failed: list[str] = []
    seen: dict[str, Any] = {}
    for name, rule in sorted(model_rules(policy).items()):
        label = PREFIX + name
        wanted_type = rule.get("predicate_type")
        signers = rule.get("signed_by")
        providers = [e for e in evidence if name in e.claims and (wanted_type is None or e.predicate_type ==
                                                                   wanted_type) and (signers is None or e.signer in signers)]
        if not providers:
            qual = f" of type {wanted_type}" if wanted_type else ""
            qual += f" signed by {', '.join(signers)}" if signers else ""
            failed.append(f"{label}: missing claim (no verified model evidence{qual} provides it)")
            continue
        for ev in providers:
            value = ev.claims[name]
            seen[f"{label}@{ev.source}"] = value
            reason = evaluate_rule(value, rule, when)
            if reason:
                failed.append(f"{label}: {reason} ({ev.source}, {ev.predicate_type}, signed by {ev.signer})")
    return failed, seen


def require_model_only(policy: Policy) -> None:
    """Refuse a policy with environment requirements where only model evidence is checked.

    Raises:
        UsageError: the policy requires evidence kinds or has rules other than ``model.*``.
    """
    env_rules = sorted(k for k in policy.claims if not k.startswith(PREFIX))
    if policy.require or env_rules:
        what = ", ".join([*policy.require, *env_rules])
        raise UsageError(f"policy {policy.name} also has environment requirements ({what}); `qsafe verify` checks "
                         "model evidence only", hint="use `qsafe load` with --evidence/--collect, or a policy "
                                                     "with only model.* rules")


def check_model_evidence(policy: Policy, evidence: Sequence[ModelEvidence], refused: Sequence[str] = (),
                         at: dt.datetime | None = None) -> dict[str, Any]:
    """The model-evidence gate without environment evidence (``qsafe verify --policy``).

    Returns:
        The claim values that satisfied the rules.

    Raises:
        UsageError: the policy also has environment requirements (use the load gate for those).
        AttestationError: a rule fails or an evaluation was refused (every failure named; exit 15).
    """
    require_model_only(policy)
    failed, seen = evaluate_model_rules(policy, evidence, at)
    failed = [*refused, *failed]
    if failed:
        lines = [f"model evidence denied by policy {policy.name} ({len(failed)} failed):", *(f"  {f}" for f in failed)]
        raise AttestationError(lines, failed_claims=[f.split(":", 1)[0] for f in failed],
                               hint="the model lacks signed evidence the policy requires: it was not accepted")
    return seen


def read_predicate(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a predicate from a JSON file (an object; duplicate keys and NaN/Infinity refused; at most 16 MiB).

    Raises:
        FormatError: unreadable, too large, not JSON or not an object.
    """
    data, source = _read(path)
    doc = _json(data, f"predicate {source}")
    if not isinstance(doc, dict):
        raise FormatError(f"predicate {source} must be a JSON object")
    return doc


def model_digest_of(model: str | os.PathLike[str], signature: Any, keys: Any) -> str:
    """Verify a model against its signature bundle and return its ``sha256:<root>`` digest (what to sign about).

    Raises:
        the errors of :func:`qsafe.verifying.verify` (the evaluator must evaluate exactly the signed model).
    """
    from qsafe.policy import VerificationPolicy
    from qsafe.verifying import verify

    return verify(model, signature, keys, policy=VerificationPolicy()).model_digest
