"""Sign a model: hash it into a manifest, sign PAE(payloadType, statement) and write the bundle atomically.

The DSSE signature is made by :meth:`qsafe.keys.PrivateKey.sign`: ML-DSA (FIPS 204, pure) with the empty
context string (Sigstore's convention, see :func:`qsafe.bundle.dsse_signing_context`), composite
ML-DSA-65+Ed25519 with ``qsafe._labels.MLDSA_CONTEXT_MODEL_BUNDLE``, or ECDSA P-256/SHA-256 (model-signing
compatible; ECDSA has no context).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qsafe import _limits
from qsafe._dsse import pae
from qsafe._files import read_regular
from qsafe._io import atomic_output
from qsafe._labels import DSSE_PAYLOAD_TYPE
from qsafe.bundle import (
    DEFAULT_SIGNATURE_NAME,
    build_bundle,
    default_signature_path,
    dsse_signing_context,
    parse_bundle,
    statement_bytes,
)
from qsafe.errors import FormatError, InvalidInputError, KeyFileError, OutputExistsError, UsageError
from qsafe.hashing import HashingConfig, Progress
from qsafe.keys import PassphraseSource, PrivateKey
from qsafe.manifest import Manifest, hash_model

if TYPE_CHECKING:
    from cryptography import x509

    from qsafe.keyless import TrustRoot

__all__ = ["DEFAULT_PQ_SIGNATURE_NAME", "DEFAULT_SIGNATURE_NAME", "default_signature_path", "pq_signature_path",
           "sign", "sign_manifest"]

# A hybrid release: the keyless Sigstore bundle takes model-signing's name (model.sig), so the ecosystem's tools
# find and verify it on their own; the post-quantum bundle lies beside it. Both sign the same statement.
DEFAULT_PQ_SIGNATURE_NAME = "model.pq.sig"


def pq_signature_path(model: str | Path) -> Path:
    """``model.pq.sig`` inside a model directory, or beside a single-file model (the PQ half of a hybrid)."""
    p = Path(model)
    return p / DEFAULT_PQ_SIGNATURE_NAME if p.is_dir() else p.parent / DEFAULT_PQ_SIGNATURE_NAME


def signing_key(key: PrivateKey | str | os.PathLike[str], passphrase: PassphraseSource = None,
                passphrase_file: str | os.PathLike[str] | None = None) -> PrivateKey:
    """A :class:`~qsafe.keys.PrivateKey` from a key object or a key file path (opened with the passphrase).

    Raises:
        TypeError: ``key`` is neither a PrivateKey nor a path.
        KeyFileError: the file is unreadable, not a private key, or protected and no passphrase was given.
        WrongPassphraseError: the passphrase does not open it.
    """
    if isinstance(key, PrivateKey):
        return key
    if not isinstance(key, (str, os.PathLike)):
        raise TypeError(f"key must be a qsafe.keys.PrivateKey or the path of a .key file, not {type(key).__name__}")
    from qsafe.keys import load_private_key

    path = Path(key)
    if not path.is_file():
        raise KeyFileError(f"signing key {path} does not exist" if not path.exists() else f"{path} is not a file",
                           hint="pass the private key file that `qsafe keygen --out PREFIX` wrote (PREFIX.key)")
    if passphrase is not None and passphrase_file is not None:
        raise UsageError("give passphrase or passphrase_file, not both")
    return load_private_key(path, passphrase, passphrase_file=passphrase_file)


def _check_certificate(key: PrivateKey, certificates: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    leaf_spki = certificates[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if leaf_spki != key.public_key().to_der():
        raise KeyFileError("the signing certificate is not for this key (its public key differs)",
                           hint="pass the certificate issued for --key's public key")
    return tuple(c.public_bytes(Encoding.DER) for c in certificates)


def sign_manifest(manifest: Manifest, key: PrivateKey, *,
                  certificates: Sequence[x509.Certificate] = ()) -> bytes:
    """Sign a manifest and return the bundle bytes.

    Args:
        manifest: the manifest to sign (from :func:`qsafe.manifest.hash_model`).
        key: the signing key.
        certificates: the signing certificate and its issuers (leaf first), to put an ``x509CertificateChain``
            in the bundle instead of a key hint.

    Returns:
        The Sigstore-bundle JSON, UTF-8.

    Raises:
        KeyFileError: the certificate's public key is not ``key``'s.
    """
    payload = statement_bytes(manifest)
    return _key_bundle(payload, key, certificates)


def _key_bundle(payload: bytes, key: PrivateKey, certificates: Sequence[x509.Certificate]) -> bytes:
    ders = _check_certificate(key, certificates) if certificates else ()
    signature = key.sign(pae(DSSE_PAYLOAD_TYPE, payload), dsse_signing_context(key.algorithm))
    public = key.public_key()
    return build_bundle(payload, signature, hint=public.model_signing_hint, details=public.key_details,
                        keyid=public.key_id, certificates=ders)


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        return Path(os.path.realpath(path)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None


def _refuse_clobber(target: Path, model: Path) -> None:
    if os.path.realpath(target) == os.path.realpath(model) or target.is_dir():
        raise OutputExistsError(f"signature path {target} is the model itself")
    if target.exists() or target.is_symlink():
        try:
            parse_bundle(read_regular(target, "existing signature", max_bytes=_limits.BUNDLE_MAX_BYTES))
        except FormatError:
            raise OutputExistsError(f"{target} exists and is not a signature bundle; refusing to overwrite it") from None


def _refuse_foreign_default(target: Path, model: Path) -> None:
    """The default ``model.sig`` beside a single file is also a folder's default: replace it only when it is the
    bundle of this very file (a single-file manifest named like it), never the folder's."""
    if not target.exists():
        return
    try:
        statement = parse_bundle(read_regular(target, "existing signature", max_bytes=_limits.BUNDLE_MAX_BYTES))
        doc = statement.statement()
        own = [s.get("name") for s in doc.get("subject", []) if isinstance(s, dict)] == [model.name] and all(
            isinstance(r, dict) and r.get("name") == "." for r in doc["predicate"]["resources"])
    except (FormatError, KeyError, TypeError, AttributeError):
        own = False
    if not own:
        raise OutputExistsError(
            f"{target} exists and is not the signature of {model.name} (it is most likely the signature of the "
            f"folder {model.parent}); signing the file would replace it",
            hint="name the file's signature with --signature FILE.sig, or pass --force to replace it")


def _refuse_oversized(size: int) -> None:
    """sign refuses what verify would refuse: a bundle over the size verify reads."""
    if size > _limits.BUNDLE_MAX_BYTES:
        raise InvalidInputError(
            f"the signature would be about {size} bytes, more than the {_limits.BUNDLE_MAX_BYTES} bytes verify "
            "accepts; nothing was written", hint="sign with --no-tensor-digests, or sign the model in parts")


def sign(
    model: str | os.PathLike[str],
    key: PrivateKey | str | os.PathLike[str] | None = None,
    *,
    signature: str | os.PathLike[str] | None = None,
    config: HashingConfig | None = None,
    progress: Progress | None = None,
    certificates: Sequence[x509.Certificate] = (),
    sigstore_token: str | None = None,
    trust_root: TrustRoot | None = None,
    pq_signature: str | os.PathLike[str] | None = None,
    passphrase: PassphraseSource = None,
    passphrase_file: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Manifest:
    """Sign a model directory or file and write its signature bundle(s).

    With ``key`` alone: one bundle signed by the key (a ``publicKey`` hint, or with ``certificates`` an X.509
    chain). With ``sigstore_token`` alone: one Sigstore keyless bundle (Fulcio certificate + Rekor entry).
    With both: a **hybrid release**: the keyless bundle at ``signature`` (default ``model.sig``, where
    model-signing looks) and the key's bundle at ``pq_signature`` (default ``model.pq.sig``), both over the
    same in-toto statement, whose ``ignore_paths`` list both files.

    Every argument is checked (the model exists, the key opens, the signature paths are free) before the model
    is hashed: ``qsafe.sign("my-model", "release.key", passphrase_file="pw.txt")``.

    Args:
        model: the model directory or single file.
        key: the private signing key: a :class:`~qsafe.keys.PrivateKey`, or the path of a ``.key`` file.
        signature: where to write the (first) bundle (default :func:`default_signature_path`). A signature
            inside the model directory is left out of the manifest.
        config: hashing parameters (default SHA-256, ``files``, tensor digests on).
        progress: optional ``(advance_bytes, total_bytes)`` callback while hashing.
        certificates: the key's signing certificate and issuers, leaf first (``qsafe sign --certificate``).
        sigstore_token: an OIDC identity token: sign keyless too (:func:`qsafe.keyless.find_identity_token`).
        trust_root: the client trust configuration of a private Sigstore instance (default: production).
        pq_signature: where the key's bundle goes in a hybrid release (default :func:`pq_signature_path`).
        passphrase, passphrase_file: open a protected key file (bytes, str, or a callable returning one; or a
            file whose first line is the passphrase). The library never prompts and never reads the environment.
        force: replace an existing bundle at the *default* path beside a single-file model even when it is not
            that file's own (it is most likely the signature of the folder the file lies in).

    Returns:
        The signed manifest.

    Raises:
        UsageError: neither a key nor a token, or the model does not exist. KeyFileError: the key file cannot be
            opened (WrongPassphraseError: wrong passphrase), or the certificate is not the key's.
        TypeError: ``key`` is neither a PrivateKey nor a path.
        OutputExistsError: a signature path is the model, or an existing file that is not a bundle, or (without
            ``force``) the default path beside a single-file model holds another model's bundle.
        InvalidInputError: the bundle would be larger than verify accepts (``qsafe._limits.BUNDLE_MAX_BYTES``).
        InvalidInputError: refused symlink or special file in the model.
        FormatError: a malformed ``.safetensors`` header (use ``tensor_digests=False`` to sign it as bytes).
        UnavailableError: the Sigstore services cannot be reached.
    """
    if key is None and sigstore_token is None:
        raise UsageError("nothing to sign with: give a key, an identity token (keyless), or both (hybrid)")
    if certificates and key is None:
        raise UsageError("a signing certificate needs its private key")
    root = Path(model)
    if not root.exists():
        raise UsageError(f"model {root} does not exist", hint="pass the model directory or file to sign")
    if key is not None:
        key = signing_key(key, passphrase, passphrase_file)
    target = Path(signature) if signature is not None else default_signature_path(root)
    targets = [target]
    if key is not None and sigstore_token is not None:
        targets.append(Path(pq_signature) if pq_signature is not None else pq_signature_path(root))
        if os.path.realpath(targets[0]) == os.path.realpath(targets[1]):
            raise UsageError("the keyless and the post-quantum bundle need two different paths")
    for t in targets:
        _refuse_clobber(t, root)
    if root.is_file() and not force:
        defaults = [targets[0]] if signature is None else []
        defaults += [targets[1]] if len(targets) > 1 and pq_signature is None else []
        for t in defaults:
            _refuse_foreign_default(t, root)
    cfg = config or HashingConfig()
    if key is not None and certificates:
        _check_certificate(key, certificates)  # before any hashing
    if sigstore_token is not None:
        from qsafe.keyless import check_identity_token

        check_identity_token(sigstore_token)  # an expired token fails now, not after hashing
    for t in targets:
        rel = _relative_inside(t, root) if root.is_dir() else None
        if rel is not None and rel not in cfg.ignore_paths:
            cfg = dataclasses.replace(cfg, ignore_paths=(*cfg.ignore_paths, rel))
    manifest = hash_model(root, cfg, progress=progress)
    payload = statement_bytes(manifest)
    _refuse_oversized(len(payload) * 4 // 3 + (64 << 10))  # before any signing (keyless signing goes online)
    outputs: list[bytes] = []
    if sigstore_token is not None:
        from qsafe.keyless import sign_keyless

        outputs.append(sign_keyless(payload, sigstore_token, trust_root))
    if key is not None:
        outputs.append(_key_bundle(payload, key, certificates))
    for data in outputs:
        _refuse_oversized(len(data))
    for t, data in zip(targets, outputs):
        with atomic_output(t, inputs=(root,)) as out:
            out.write(data)
    return manifest
