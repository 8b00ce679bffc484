"""Verify a model against its signature bundle(s). Verification raises; success returns quietly.

Order of checks: parse every bundle (FormatError, exit 3) -> verify each signature with the trust input its kind
needs (SignatureError, 10): a given public key (``key`` bundles), a certificate chain to given trusted
certificates (``certificate`` bundles), or a Sigstore trust root plus an expected identity (``sigstore``, keyless)
-> apply the policy to the verified signers (PolicyError, 11) -> parse the signed manifests (FormatError, 3) ->
hash the model the same way and compare (ModelMismatchError, 12, naming every changed, missing and extra file and
every changed tensor).

Every model-signing bundle generation is read: ``publicKey.rawBytes`` (0.3-1.0), the 0.2 ``Digests/v0.1``
predicate and its PAE bug, ``shard_size`` written as a float, blake2b, and the single-file ``.`` resource.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsafe._hashing.compare import mismatch_message
from qsafe._hashing.safetensors import digest_safetensors
from qsafe._hashing.walk import check_resource_path
from qsafe.bundle import (
    KIND_CERTIFICATE,
    KIND_KEY,
    Bundle,
    dsse_verification_contexts,
    manifest_from_statement,
    parse_bundle,
    read_bundle,
)
from qsafe.errors import FormatError, InvalidInputError, KeyFileError, ModelMismatchError, SignatureError, UsageError
from qsafe.hashing import Progress
from qsafe.keys import PublicKey, load_public_keys, public_key_from_der, public_key_from_pem
from qsafe.manifest import Manifest, Resource, SafetensorsDigests, hash_model
from qsafe.policy import Identity, Policy, Signer

if TYPE_CHECKING:
    from qsafe.attestation.policy import Policy as AttestationPolicy
    from qsafe.model_evidence import ModelEvidence

__all__ = ["Verification", "default_signatures", "verify", "verify_bundle", "verify_bundle_signer",
           "verify_signatures"]

KeysArg = PublicKey | str | os.PathLike[str] | Iterable[PublicKey | str | os.PathLike[str]]
SignatureArg = str | os.PathLike[str] | bytes | Bundle
CertificatesArg = Sequence[Any] | None  # cryptography x509.Certificate objects or PEM paths


@dataclass(frozen=True)
class Verification:
    """What was verified: the signed manifest and who signed it.

    ``key_id``/``algorithm``/``post_quantum`` describe the primary signer (the first post-quantum one, else the
    first); ``signers`` lists every verified signature (two for a hybrid release).
    """

    manifest: Manifest
    key_id: str
    algorithm: str
    post_quantum: bool
    signers: tuple[Signer, ...] = ()
    model_evidence: tuple[ModelEvidence, ...] = field(default=())

    @property
    def model_digest(self) -> str:
        """``sha256:<root>``: the digest signed model evidence must name as its subject."""
        return "sha256:" + self.manifest.root_digest

    def __repr__(self) -> str:  # one line: the manifest (every file and tensor digest) stays out of it
        m = self.manifest
        tensors = sum(len(t.tensors) for t in m.tensors.values())
        signers = f", signers={len(self.signers)}" if len(self.signers) > 1 else ""
        evidence = f", model_evidence={len(self.model_evidence)}" if self.model_evidence else ""
        return (f"Verification(model={m.model_name!r}, digest={self.model_digest[:19]}…, files={len(m.files())}, "
                f"tensors={tensors}, key_id={self.key_id[:19]}…, algorithm={self.algorithm!r}, "
                f"post_quantum={self.post_quantum}{signers}{evidence})")


def default_signatures(model: str | os.PathLike[str], *, keys: Any = None, certificate_roots: Any = None,
                       policy: Policy | None = None) -> list[Path]:
    """The bundles the CLI verifies when none is named: ``MODEL/model.sig`` (beside a single-file model) and,
    when present, ``model.pq.sig`` (a hybrid release); with both, those this call has trust input for.

    Raises:
        UsageError: neither file exists.
    """
    from qsafe.signing import default_signature_path, pq_signature_path

    found = [p for p in (default_signature_path(Path(model)), pq_signature_path(Path(model))) if p.is_file()]
    if not found:
        raise UsageError(f"no signature given and {default_signature_path(Path(model))} does not exist",
                         hint="pass signature=PATH (the bundle `qsafe sign` wrote)")
    if len(found) == 1:
        return found
    trusted = {"key": keys is not None, "certificate": certificate_roots is not None,
               "sigstore": policy is not None and bool(policy.keyless_identities())}
    return [p for p in found if trusted.get(read_bundle(p).kind, False)] or found


def check_argument_types(model: str | os.PathLike[str], keys: Any) -> None:
    """Wrong types and a missing model are refused before any work (TypeError / UsageError)."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path, not {type(model).__name__}")
    if not Path(model).exists():
        raise UsageError(f"model {model} does not exist", hint="pass the model directory or file")
    if keys is not None and not isinstance(keys, (PublicKey, str, os.PathLike, Iterable)):
        raise TypeError(f"keys must be a PublicKey, a path, or several of them, not {type(keys).__name__}")


def _keys(keys: KeysArg | None) -> list[PublicKey]:
    if keys is None:
        return []
    items = [keys] if isinstance(keys, (PublicKey, str, os.PathLike)) else list(keys)
    out: list[PublicKey] = []
    for item in items:
        out.extend([item] if isinstance(item, PublicKey) else load_public_keys(Path(item)))
    return out


def _bundle(signature: SignatureArg) -> tuple[Bundle, str]:
    if isinstance(signature, Bundle):
        return signature, "<bundle>"
    if isinstance(signature, bytes):
        return parse_bundle(signature), "<bytes>"
    return read_bundle(Path(signature)), str(signature)


def _raw_key(bundle: Bundle) -> PublicKey | None:
    """The key a model-signing 0.3-1.0 bundle names in ``publicKey.rawBytes`` (PEM, or DER), unsigned."""
    raw = bundle.raw_public_key
    if raw is None:
        return None
    try:
        return public_key_from_pem(raw, source="publicKey.rawBytes") if raw.lstrip().startswith(b"-----") \
            else public_key_from_der(raw)
    except KeyFileError as exc:
        raise FormatError(f"bundle publicKey.rawBytes is not a public key: {exc}") from None


def _compat_pae(payload: bytes) -> bytes:
    """The bytes model-signing 0.2 signed by mistake: ``str(bytes)`` interpolated into ``DSSEV1 …``."""
    from qsafe._labels import DSSE_PAYLOAD_TYPE

    return f"DSSEV1 {len(DSSE_PAYLOAD_TYPE)} {DSSE_PAYLOAD_TYPE} {len(payload)} {payload!r}".encode()


def _ecdsa_sha256(key: PublicKey, signature: bytes, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = serialization.load_der_public_key(key.to_der())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    try:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _dsse_signature_verifies(bundle: Bundle, key: PublicKey) -> bool:
    """Does ``bundle``'s DSSE signature verify with ``key``, in one of the encodings this algorithm has used?

    ML-DSA: the empty context (Sigstore's convention; qsafe signs this way), then qsafe 0.1's
    ``qsafe/v1 model-bundle dsse``. Composites: qsafe's context. ECDSA: DSSE PAE, then model-signing 0.2's
    mis-encoded PAE with the curve's hash or SHA-256 (0.2 hard-coded SHA-256 for certificate signatures).
    """
    signed = bundle.signed_bytes()
    for context in dsse_verification_contexts(key.algorithm):
        try:
            key.verify(bundle.signature, signed, context)
            return True
        except SignatureError:
            continue
    if key.post_quantum:
        return False
    compat = _compat_pae(bundle.payload)
    try:
        key.verify(bundle.signature, compat, b"")
        return True
    except SignatureError:
        return _ecdsa_sha256(key, bundle.signature, compat)


def _require_scheme(bundle: Bundle) -> None:
    """A bundle signed with an algorithm whose plugin is not installed: exit 5 naming the plugin (not "bad key")."""
    if bundle.key_details is None:
        return
    from qsafe import signers

    if signers.scheme_for_key_details(bundle.key_details) is None:
        missing = signers.missing_plugin_error(key_details=bundle.key_details)
        if missing is not None:
            raise missing


def _key_signer(bundle: Bundle, keys: list[PublicKey], source: str) -> Signer:
    if not keys:
        raise UsageError(f"{source} is signed with a key; pass the signer's public key with --key")
    _require_scheme(bundle)
    named = _raw_key(bundle)
    candidates = [k for k in keys if bundle.key_hint is None or k.model_signing_hint == bundle.key_hint]
    if named is not None:
        candidates = [k for k in candidates if k == named]
    if not candidates:
        which = f"key hint {bundle.key_hint}" if bundle.key_hint else f"key {named.key_id if named else '?'}"
        raise SignatureError(
            f"the bundle was signed with {which}, which matches none of the {len(keys)} given key(s)",
            hint="pass the signer's public key with --key; the signature may be from another signer",
        )
    for key in candidates:
        # keyDetails and keyid are unsigned hints; a bundle whose hints contradict the key is not this key's.
        if bundle.key_details is not None and bundle.key_details != key.key_details:
            continue
        if bundle.keyid is not None and bundle.keyid != key.key_id:
            continue
        if _dsse_signature_verifies(bundle, key):
            return Signer(KIND_KEY, key.algorithm, key.post_quantum, key.key_id, source)
    raise SignatureError(
        f"the DSSE signature does not verify with the given key ({candidates[0].key_id}, "
        f"{bundle.key_details or candidates[0].algorithm}): the bundle was modified or signed by another key"
    )


def _trusted_certificates(roots: CertificatesArg) -> list[Any]:
    from cryptography import x509

    from qsafe.certificates import load_certificates

    out: list[Any] = []
    for item in roots or ():
        out.extend([item] if isinstance(item, x509.Certificate) else load_certificates([item]))
    return out


def _certificate_signer(bundle: Bundle, roots: CertificatesArg, at: dt.datetime | None, source: str) -> Signer:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from qsafe.certificates import certificate_info, parse_der_certificates, verify_chain

    trusted = _trusted_certificates(roots)
    if not trusted:
        raise UsageError(f"{source} is signed with an X.509 certificate chain; pass the trusted root with "
                         "--certificate-chain")
    path = verify_chain(parse_der_certificates(bundle.certificates), trusted, at=at)
    leaf = path[0]
    try:
        key = public_key_from_der(leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    except KeyFileError as exc:
        raise SignatureError(f"the signing certificate's key cannot sign model bundles: {exc}") from None
    if not _dsse_signature_verifies(bundle, key):
        raise SignatureError(f"the DSSE signature does not verify with the key of the signing certificate "
                             f"{leaf.subject.rfc4514_string()}: the bundle was modified")
    return Signer(KIND_CERTIFICATE, key.algorithm, key.post_quantum, key.key_id, source,
                  certificate=certificate_info(leaf, path[1:]))


def _keyless_signer(bundle: Bundle, identities: Sequence[Identity], trust_root: Any, source: str) -> Signer:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from qsafe.certificates import certificate_info
    from qsafe.keyless import verify_keyless

    result = verify_keyless(bundle.raw, identities, trust_root, document=bundle.document)
    if result.payload != bundle.payload or result.payload_type != bundle.payload_type:
        raise FormatError("the Sigstore library read a different payload than qsafe's parser")  # never expected
    key = public_key_from_der(result.certificate.public_key().public_bytes(Encoding.DER,
                                                                           PublicFormat.SubjectPublicKeyInfo))
    return Signer("sigstore", key.algorithm, key.post_quantum, key.key_id, source,
                  certificate=certificate_info(result.certificate), identities=result.identities,
                  log_entries=result.log_entries)


def _identities(policy: Policy) -> tuple[Identity, ...]:
    method = getattr(policy, "keyless_identities", None)
    return tuple(method()) if callable(method) else ()


def _verify_signer(bundle: Bundle, source: str, keys: list[PublicKey], policy: Policy, *,
                   certificate_roots: CertificatesArg, trust_root: Any, at: dt.datetime | None) -> Signer:
    if bundle.kind == KIND_KEY:
        return _key_signer(bundle, keys, source)
    if bundle.kind == KIND_CERTIFICATE:
        return _certificate_signer(bundle, certificate_roots, at, source)
    return _keyless_signer(bundle, _identities(policy), trust_root, source)


def verify_signatures(
    signatures: SignatureArg | Sequence[SignatureArg],
    keys: KeysArg | None = None,
    *,
    policy: Policy,
    certificate_roots: CertificatesArg = None,
    trust_root: Any = None,
    at: dt.datetime | None = None,
) -> list[tuple[Signer, Manifest]]:
    """Verify every given bundle's signature and apply the policy; no hashing.

    Returns:
        (signer, signed manifest) for each bundle, in the given order.

    Raises:
        FormatError (3), SignatureError (10), PolicyError (11), UsageError (2: a bundle whose trust input is
        missing, e.g. a certificate bundle without --certificate-chain).
    """
    items = [signatures] if isinstance(signatures, (str, os.PathLike, bytes, Bundle)) else list(signatures)
    if not items:
        raise UsageError("no signature bundle given")
    given = _keys(keys)
    parsed = [_bundle(s) for s in items]
    if keys is not None and not given:
        raise SignatureError("no public key was given to verify with", hint="pass at least one --key PUB")
    signers = [_verify_signer(b, src, given, policy, certificate_roots=certificate_roots, trust_root=trust_root,
                              at=at) for b, src in parsed]
    policy.check_signers(signers)
    return [(s, manifest_from_statement(b.statement())) for s, (b, _) in zip(signers, parsed)]


def _primary(signers: Sequence[Signer]) -> Signer:
    return next((s for s in signers if s.post_quantum), signers[0])


def verify_bundle_signer(
    signature: SignatureArg, keys: KeysArg | None, policy: Policy, *, certificate_roots: CertificatesArg = None,
    trust_root: Any = None, at: dt.datetime | None = None,
) -> Verification:
    """Like :func:`verify_bundle`, also saying who signed (for reports)."""
    verified = verify_signatures(signature, keys, policy=policy, certificate_roots=certificate_roots,
                                 trust_root=trust_root, at=at)
    signer, manifest = verified[0]
    return Verification(manifest, signer.key_id, signer.algorithm, signer.post_quantum, (signer,))


def verify_bundle(signature: SignatureArg, keys: KeysArg | None, policy: Policy, **trust: Any) -> Manifest:
    """Check a bundle's signature and the policy, and return the signed manifest, without hashing the model.

    For loaders that hash the bytes they load themselves (e.g. with :func:`qsafe.manifest.tensor_digest`).

    Args:
        signature: the bundle path, its bytes, or a parsed :class:`~qsafe.bundle.Bundle`.
        keys: trusted public key(s): :class:`~qsafe.keys.PublicKey` objects or ``.pub`` paths (key bundles).
        policy: the verification policy (required).
        trust: ``certificate_roots=``, ``trust_root=``, ``at=`` as for :func:`verify`.

    Returns:
        The signed manifest.

    Raises:
        FormatError: malformed bundle or manifest (exit 3).
        SignatureError: no given key verifies the signature (exit 10).
        PolicyError: the signature verifies but the policy refuses it (exit 11).
    """
    return verify_bundle_signer(signature, keys, policy, **trust).manifest


def verify(
    model: str | os.PathLike[str],
    signature: SignatureArg | Sequence[SignatureArg] | None = None,
    keys: KeysArg | None = None,
    *,
    policy: Policy,
    certificate_roots: CertificatesArg = None,
    trust_root: Any = None,
    at: dt.datetime | None = None,
    allow_symlinks: bool = False,
    ignore_paths: Sequence[str] = (),
    progress: Progress | None = None,
    evaluations: Sequence[Any] = (),
    evaluator_keys: KeysArg | None = None,
    evidence_policy: AttestationPolicy | str | os.PathLike[str] | None = None,
) -> Verification:
    """Verify a model directory or file against its signature bundle(s).

    Args:
        model: the model directory or file.
        signature: the bundle path, bytes or parsed bundle; or several (a hybrid release): each must verify.
            Default: as the CLI, ``MODEL/model.sig`` (and ``model.pq.sig`` when present, see
            :func:`default_signatures`).
        keys: trusted public key(s), for key-signed bundles.
        policy: the verification policy (required): :class:`~qsafe.policy.VerificationPolicy` (PQ required by
            default) or a composition with :class:`~qsafe.policy.Identity` etc.
        certificate_roots: trusted certificates (``x509.Certificate`` or PEM paths), for certificate bundles.
        trust_root: a :class:`qsafe.keyless.TrustRoot` for keyless bundles (default: pinned production root).
        at: the verification time: certificate chains must be valid then, and the evidence policy's rules are
            evaluated then (default: now).
        allow_symlinks: follow in-root symlinks, if the signer also allowed them.
        ignore_paths: more relative paths to leave out (as ``model_signing verify --ignore-paths``).
        progress: optional ``(advance_bytes, total_bytes)`` callback while hashing.
        evaluations: signed model evidence (paths, bytes or :class:`~qsafe.model_evidence.ModelEvidence`) about
            this model, checked after the model itself (signature, subject = this model's root digest).
        evaluator_keys: trusted public key(s) of the evaluators (required with ``evaluations``).
        evidence_policy: an attestation policy whose ``model.*`` rules the evidence must satisfy (a policy with
            environment rules is refused here: that is the load gate's job).

    Returns:
        What was verified (the manifest, the signers, the verified model evidence).

    Raises:
        FormatError: malformed bundle or evidence (3). SignatureError: bad signature, wrong key, untrusted
        chain (10). PolicyError: refused by policy (11). ModelMismatchError: the model changed (12).
        AttestationError: the model evidence is missing, refused or too weak for ``evidence_policy`` (15).
        InvalidInputError: refused symlink or special file in the model (2). UsageError: missing trust input, a
        missing model or no signature (2). TypeError: an argument of the wrong type. All before any hashing.
    """
    check_argument_types(model, keys)
    if signature is None:
        signature = default_signatures(model, keys=keys, certificate_roots=certificate_roots, policy=policy)
    pol = _model_policy(evidence_policy)  # a wrong policy is refused before hashing
    if evaluations and evaluator_keys is None:
        raise UsageError("model evidence needs the evaluator's public key", hint="pass --evaluator-key PUB")
    for p in ignore_paths:
        try:
            check_resource_path(p.rstrip("/"), what="ignore path")
        except FormatError as exc:
            raise UsageError(str(exc)) from None
    items = [signature] if isinstance(signature, (str, os.PathLike, bytes, Bundle)) else list(signature)
    root = Path(model)
    inside = [rel for s in items if (rel := signature_inside(s, root)) is not None]
    bundles = [_bundle(s) for s in items]

    def config_of(manifest: Manifest) -> Any:
        ignore = [p.rstrip("/") for p in (*manifest.serialization.ignore_paths, *ignore_paths)] + inside
        config = manifest.serialization.hashing_config(allow_symlinks=allow_symlinks)
        return dataclasses.replace(config, ignore_paths=tuple(dict.fromkeys(ignore)))

    ahead = _hash_ahead(bundles, root, config_of, progress)
    try:
        verified = verify_signatures([b for b, _ in bundles], keys, policy=policy,
                                     certificate_roots=certificate_roots, trust_root=trust_root, at=at)
        verified = [(dataclasses.replace(s, source=src), m) for (s, m), (_, src) in zip(verified, bundles)]
        hashed: dict[Any, Manifest] = {}
        for _, expected in verified:
            expected = _for_single_file(expected, root)
            config = config_of(expected)
            if config not in hashed:
                hashed[config] = ahead.result() if ahead is not None and ahead.config == config \
                    else hash_model(root, config, progress=progress)
            _compare(expected, hashed[config], root)
    finally:
        if ahead is not None:
            ahead.cancel()  # a no-op when its result was used; else it stops the speculative hashing
    signers = tuple(s for s, _ in verified)
    primary = _primary(signers)
    result = Verification(verified[signers.index(primary)][1], primary.key_id, primary.algorithm,
                          primary.post_quantum, signers)
    if evaluations or pol is not None:
        result = dataclasses.replace(result, model_evidence=_check_evidence(
            result.model_digest, evaluations, evaluator_keys, pol, at))
    return result


def _model_policy(policy: AttestationPolicy | str | os.PathLike[str] | None) -> AttestationPolicy | None:
    if policy is None:
        return None
    from qsafe.attestation.policy import Policy, load_policy
    from qsafe.model_evidence import require_model_only

    pol = policy if isinstance(policy, Policy) else load_policy(Path(policy))
    require_model_only(pol)
    return pol


def _check_evidence(model_digest: str, evaluations: Sequence[Any], keys: KeysArg | None,
                    pol: AttestationPolicy | None, at: dt.datetime | None) -> tuple[ModelEvidence, ...]:
    from qsafe.model_evidence import check_model_evidence, gather_model_evidence

    verified, refused = gather_model_evidence(list(evaluations), keys, model_digest)
    if pol is not None:
        check_model_evidence(pol, verified, refused, at)
    elif refused:
        from qsafe.errors import AttestationError

        raise AttestationError(["model evidence refused:", *(f"  {r}" for r in refused)],
                               failed_claims=[r.split(":", 1)[0] for r in refused])
    return tuple(verified)


# Speculative hashing: while the sigstore library is imported and a keyless bundle is checked (hundreds of
# milliseconds, mostly Python imports holding the GIL), the model is hashed on other threads (hashlib releases
# the GIL) with the configuration the *unverified* statement names. The digests are used only after the
# signature verified and only if the verified statement asks for exactly that configuration; a bundle that
# fails verification just wastes the hash. To keep the work an unverified bundle can cause bounded by the
# model's size, only ``files`` and shards of at least 1 MiB are hashed ahead.
_MIN_SPECULATIVE_SHARD = 1 << 20


class _Cancelled(Exception):
    """Raised from the progress callback to stop hashing ahead (hash_model stops at a worker's first error)."""


class _HashAhead:
    def __init__(self, root: Path, config: Any, progress: Progress | None) -> None:
        self.config = config
        self._out: list[Manifest] = []
        self._error: list[BaseException] = []
        self._stop = threading.Event()

        def report(advance: int, total: int) -> None:
            if self._stop.is_set():
                raise _Cancelled()
            if progress is not None:
                progress(advance, total)

        def run() -> None:
            try:
                self._out.append(hash_model(root, config, progress=report))
            except BaseException as exc:  # noqa: BLE001 - re-raised by result() in the calling thread
                self._error.append(exc)

        self._thread = threading.Thread(target=run, name="qsafe-hash-ahead", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop hashing at the next chunk and wait for the threads (a failed verification returns quickly)."""
        self._stop.set()
        self._thread.join()

    def result(self) -> Manifest:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._out[0]


def _hash_ahead(bundles: Sequence[tuple[Bundle, str]], root: Path, config_of: Any,
                progress: Progress | None) -> _HashAhead | None:
    if not any(b.kind == "sigstore" for b, _ in bundles):
        return None  # key and certificate checks take a millisecond: nothing to overlap
    try:
        manifest = _for_single_file(manifest_from_statement(bundles[0][0].statement()), root)
    except (FormatError, ValueError):
        return None  # a malformed statement is reported after the signature check, in order
    ser = manifest.serialization
    if ser.method == "shards" and (ser.shard_size or 0) < _MIN_SPECULATIVE_SHARD:
        return None
    return _HashAhead(root, config_of(manifest), progress)


def _for_single_file(manifest: Manifest, root: Path) -> Manifest:
    """model-signing 0.2 named a single-file model's one subject after the file; it is ``.`` today."""
    if manifest.legacy and not root.is_dir() and len(manifest.resources) == 1 \
            and manifest.resources[0].name == root.name:
        r = manifest.resources[0]
        return dataclasses.replace(manifest, resources=(Resource(".", r.algorithm, r.digest),))
    return manifest


def signature_inside(signature: SignatureArg, root: Path) -> str | None:
    """The signature file's path relative to the model folder ``root`` when it lies inside it (verify and the load
    gate leave it out of the comparison), else None. Not in ``__all__``: a helper :mod:`qsafe.loading` shares."""
    if isinstance(signature, (bytes, Bundle)) or not root.is_dir():
        return None
    try:
        return Path(os.path.realpath(signature)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None


def _compare(expected: Manifest, actual: Manifest, root: Path) -> None:
    want, got = expected.files(), actual.files()
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(f for f in set(want) & set(got) if want[f] != got[f])
    if not (missing or extra or changed):
        return
    changed_tensors: dict[str, list[str]] = {}
    for f in changed:
        if f in expected.tensors:
            path = root if f == "." else root / f
            changed_tensors[f] = _changed_tensors(expected.tensors[f], path, expected.serialization.hash_type)
    raise ModelMismatchError(
        mismatch_message(changed, missing, extra, changed_tensors),
        changed=changed, missing=missing, extra=extra, changed_tensors=changed_tensors,
    )


def _changed_tensors(signed: SafetensorsDigests, path: Path, algorithm: str) -> list[str]:
    from qsafe._files import open_regular
    from qsafe._hashing.engines import new_hasher
    from qsafe._hashing.safetensors import check_structure, read_raw_header

    try:
        with open_regular(path, "file", error=InvalidInputError) as handle:
            raw = read_raw_header(handle, os.fstat(handle.fileno()).st_size)
        head = new_hasher(algorithm)
        head.update(raw)
        if head.digest().hex() != signed.header:
            # Costs bounded by what is signed: a changed (unsigned) header is parsed for this diagnosis only if it
            # could describe about as many tensors as the signed one did.
            check_structure(raw, tensors=2 * len(signed.tensors) + 16, start=8)
        now = digest_safetensors(path, algorithm)
    except (FormatError, InvalidInputError, OSError) as exc:
        return [f"(header unreadable: {exc})"]
    current = {t.name: d for t, d in now.tensors}
    before = signed.by_name()
    out = [n for n in sorted(before) if n in current and current[n] != before[n].digest]
    out += [f"{n} (missing)" for n in sorted(set(before) - set(current))]
    out += [f"{n} (added)" for n in sorted(set(current) - set(before))]
    if now.header_digest != signed.header and not out:
        out.append("(header)")
    return out
