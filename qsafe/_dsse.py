"""DSSE v1 (Dead Simple Signing Envelope): the pre-authentication encoding every qsafe signature over a statement
covers, and the stand-alone envelope qsafe writes its signed statements in.

- :func:`pae` — the exact bytes signed: ``"DSSEv1" SP len(type) SP type SP len(body) SP body``. Model bundles
  (the envelope inside a Sigstore bundle, parsed with the bundle by :mod:`qsafe.bundle`), attestation results,
  model evidence and dataset evidence all sign it; the ML-DSA *context* keeps those signatures apart (a
  signature made for one can never pass for another with the same key, see :mod:`qsafe._labels`).
- :func:`sign_envelope`, :func:`parse_envelope`, :func:`verify_envelope` — the JSON envelope
  ``{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}`` of attestation results and signed evidence.
  Parsing is strict: the hardened JSON reader, exactly those fields, canonical base64, the in-toto payload type,
  at least one signature; nothing in the payload is read before a signature verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qsafe import _json, _labels
from qsafe.errors import FormatError

if TYPE_CHECKING:
    from qsafe.keys import PrivateKey, PublicKey

__all__ = ["Envelope", "pae", "parse_envelope", "sign_envelope", "verify_envelope"]

_ENVELOPE_FIELDS = frozenset({"payloadType", "payload", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    """A parsed (not yet verified) envelope: the payload and its ``(keyid, signature)`` pairs."""

    payload: bytes
    signatures: tuple[tuple[str | None, bytes], ...]
    payload_type: str = _labels.DSSE_PAYLOAD_TYPE

    def signed_bytes(self) -> bytes:
        """PAE(payloadType, payload): what each signature covers."""
        return pae(self.payload_type, self.payload)


def sign_envelope(payload: bytes, key: PrivateKey, context: bytes, *,
                  payload_type: str = _labels.DSSE_PAYLOAD_TYPE) -> bytes:
    """Sign ``payload`` under the ML-DSA ``context``; return the envelope as JSON bytes (sorted keys, a final
    newline), its one signature carrying the key id."""
    signature = key.sign(pae(payload_type, payload), context)
    envelope = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": key.public_key().key_id, "sig": base64.b64encode(signature).decode()}]}
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()


def _b64(value: Any, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) and value else None
    except (binascii.Error, ValueError):
        raw = None
    # canonical form only: otherwise unused bits of the last character could change without changing the bytes
    if raw is None or base64.b64encode(raw).decode() != value:
        raise FormatError(f"{what} is not canonical base64")
    return raw


def parse_envelope(data: bytes, what: str, *, max_bytes: int, expected: str = "a DSSE envelope") -> Envelope:
    """Parse an envelope without verifying it (``what`` names the input in messages, ``expected`` what it should
    be: "model evidence 'x.json' is not a signed attestation result (...)").

    Raises:
        FormatError: not JSON (or hostile JSON), larger than ``max_bytes``, other fields than payloadType,
            payload and signatures, another payload type, non-canonical base64, or no signature.
    """
    env = _json.loads(data, what, max_bytes=max_bytes)
    if not isinstance(env, dict) or set(env) != _ENVELOPE_FIELDS:
        raise FormatError(f"{what} is not {expected} (a DSSE envelope: payloadType, payload, signatures)")
    if env["payloadType"] != _labels.DSSE_PAYLOAD_TYPE:
        raise FormatError(f"{what} is not {expected}: its payloadType is {env['payloadType']!r}, not "
                          f"{_labels.DSSE_PAYLOAD_TYPE}")
    sigs = env["signatures"]
    if not isinstance(sigs, list) or not sigs or not all(
            isinstance(s, dict) and "sig" in s and set(s) <= _SIGNATURE_FIELDS for s in sigs):
        raise FormatError(f"{what} is not {expected}: it has no signatures (a list of objects with sig and keyid)")
    signatures = tuple((s.get("keyid") if isinstance(s.get("keyid"), str) else None,
                        _b64(s["sig"], f"{what} signature")) for s in sigs)
    return Envelope(_b64(env["payload"], f"{what} payload"), signatures, env["payloadType"])


def verify_envelope(envelope: Envelope, keys: Iterable[PublicKey], context: bytes) -> PublicKey | None:
    """The first of ``keys`` that verifies one of the envelope's signatures under ``context``; None if none does
    (the caller words the :class:`~qsafe.errors.SignatureError`: it knows what was signed and by whom)."""
    from qsafe.errors import SignatureError

    message = envelope.signed_bytes()
    for key in keys:
        for _keyid, signature in envelope.signatures:
            try:
                key.verify(signature, message, context)
            except SignatureError:
                continue
            return key
    return None
