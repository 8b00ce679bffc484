"""Attestation policies: declarative JSON (schema ``attestations/schemas/attestation-policy-v1.schema.json``).

A policy names the evidence kinds it requires, the freshness modes it accepts, and typed rules over claims
(``equals``, ``one_of``, ``allowlist``, ``version_at_least``, ``at_least``, ``at_most``, ``max_age_seconds``).
A rule whose claim is absent denies. A rule on ``gpu.X`` applies to every GPU in the evidence. A rule on
``model.X`` is checked against signed model evidence (:mod:`qsafe.model_evidence`); only such rules may carry the
qualifiers ``predicate_type`` and ``signed_by``, which choose the statements whose claims count.

Freshness modes: ``binding`` (the GPU nonce / TEE report data is :func:`binding_hash` over the verifier's
single-use nonce, the model digest and this policy's digest), ``challenge`` (it is the verifier's single-use
nonce itself: fresh, but bound to no model) and ``unsafe-accept-replay`` (recorded evidence is accepted without
any freshness: development only; the result says so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qsafe import _json, _limits
from qsafe.attestation.evidence import parse_time
from qsafe.errors import FormatError

__all__ = ["POLICY_FORMAT", "Policy", "evaluate_rule", "load_policy", "policy_from_json"]

POLICY_FORMAT = "qsafe-attestation-policy/v1"
UNSAFE_REPLAY = "unsafe-accept-replay"
QUALIFIERS = ("predicate_type", "signed_by")
_MAX_POLICY_BYTES = _limits.POLICY_MAX_BYTES
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Policy:
    """A validated policy.

    Attributes:
        name: the policy's name; doc: the parsed document; digest: ``sha256:`` over its canonical JSON.
    """

    name: str
    doc: dict[str, Any]
    digest: str

    @property
    def accept(self) -> list[str]:
        return list(self.doc["freshness"]["accept"])

    @property
    def unsafe(self) -> bool:
        """True when the policy accepts replayed evidence (development only)."""
        return UNSAFE_REPLAY in self.accept

    @property
    def require(self) -> list[str]:
        return list(self.doc["require"])

    @property
    def claims(self) -> dict[str, dict[str, Any]]:
        return dict(self.doc["claims"])


def _schema() -> dict[str, Any]:
    text = resources.files("qsafe.attestation").joinpath("attestation-policy-v1.schema.json").read_text()
    return dict(json.loads(text))


def policy_from_json(doc: Any) -> Policy:
    """Validate a parsed policy document.

    Raises:
        FormatError: the document does not match the schema (the message names the path).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise FormatError(f"invalid attestation policy at {where}: {errors[0].message}")
    _check_registered(doc)
    for key, rule in doc["claims"].items():
        if "max_age_seconds" in rule and not key.endswith("_at"):
            raise FormatError(f"invalid attestation policy: max_age_seconds applies to a time claim (*_at), not {key}")
        qualifiers = sorted(q for q in QUALIFIERS if q in rule)
        if qualifiers and not key.startswith("model."):
            raise FormatError(f"invalid attestation policy: {', '.join(qualifiers)} applies to model evidence rules "
                              f"(model.*), not {key}")
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return Policy(name=doc["name"], doc=doc, digest="sha256:" + hashlib.sha256(canonical).hexdigest())


def _check_registered(doc: dict[str, Any]) -> None:
    """Required kinds and claim prefixes must be those of installed verifiers (registry qsafe.verifiers)."""
    from qsafe.attestation.verifiers import verifiers

    installed = verifiers()
    prefixes = {v.prefix for v in installed.values()} | {"evidence", "model"}
    for kind in doc["require"]:
        if kind not in installed:
            raise FormatError(f"invalid attestation policy at require: no installed verifier reads evidence kind "
                              f"{kind!r} (installed: {', '.join(installed)})",
                              hint="install the plugin that provides it (entry-point group qsafe.verifiers)")
    for key in doc["claims"]:
        if key.partition(".")[0] not in prefixes:
            raise FormatError(f"invalid attestation policy at claims/{key}: unknown claim prefix "
                              f"{key.partition('.')[0]!r} (installed: {', '.join(sorted(prefixes))})")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file, or a shipped policy by name (``"nvidia-hopper-cc"``).

    An argument without a path separator that does not end in ``.json`` is a shipped policy's name
    (:mod:`qsafe.attestation.shipped`); anything else is a path.

    Raises:
        UsageError: a name that no shipped policy has.
        FormatError: unreadable, not JSON, or not a valid policy.
    """
    from qsafe.attestation.shipped import resolve_policy

    # duplicate keys are refused here: the policy's digest must describe the one document every reader sees
    return policy_from_json(_json.load_file(resolve_policy(path), "policy", max_bytes=_MAX_POLICY_BYTES))


def _versions(value: Any, want: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Parse two dotted versions alike: all parts hex when either has a hex letter (VBIOS ``96.00.9F.00.01``),
    else decimal (drivers ``550.90.07``), so ``10`` and ``0F`` never compare in different bases."""
    a, b = str(value), str(want)
    base = 16 if any(c in "abcdefABCDEF" for c in a + b) else 10
    return tuple(int(p, base) for p in a.split(".")), tuple(int(p, base) for p in b.split("."))


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python; a policy saying `true` must not be met by the number 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else bool(a == b)


def evaluate_rule(value: Any, rule: dict[str, Any], at: dt.datetime) -> str | None:
    """Check one claim value against one rule.

    Returns:
        None when every operator holds, else the reason for the first that does not.
    """
    for op, want in rule.items():
        if op in QUALIFIERS:  # which statements count, not a test of the value (see qsafe.model_evidence)
            continue
        reason = _check(op, value, want, at)
        if reason:
            return reason
    return None


def _check(op: str, value: Any, want: Any, at: dt.datetime) -> str | None:
    try:
        if op == "equals":
            return None if _same(value, want) else f"{value!r} is not {want!r}"
        if op == "one_of":
            return None if any(_same(value, w) for w in want) else f"{value!r} is not one of {want!r}"
        if op == "allowlist":
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in want]
            return f"{bad!r} not in the allowlist" if bad else None
        if op == "version_at_least":
            have, need = _versions(value, want)
            return None if have >= need else f"version {value} is below {want}"
        if op in ("at_least", "at_most"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{value!r} is not a number"
            ok = value >= want if op == "at_least" else value <= want
            return None if ok else f"{value} is {'below' if op == 'at_least' else 'above'} {want}"
        if op == "max_age_seconds":
            when = parse_time(str(value))
            if when - at > _CLOCK_SKEW:
                return f"time {value} is in the future"
            age = (at - when).total_seconds()
            return None if age <= want else f"evidence is {int(age)} s old, more than {want} s"
    except (ValueError, TypeError, FormatError) as exc:
        return f"{value!r} cannot be compared with {op}: {exc}"
    return f"unknown operator {op}"
