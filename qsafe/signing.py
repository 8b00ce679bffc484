"""Sign a model: hash it into a manifest, sign PAE(payloadType, statement) and write the bundle atomically.

The DSSE signature is made by :meth:`qsafe.keys.PrivateKey.sign` with the fixed context string
``qsafe._labels.MLDSA_CONTEXT_MODEL_BUNDLE``: ML-DSA (FIPS 204, pure), composite ML-DSA-65+Ed25519, or ECDSA
P-256/SHA-256 (model-signing compatible; ECDSA has no context).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from qsafe._io import atomic_output
from qsafe._labels import DSSE_PAYLOAD_TYPE, MLDSA_CONTEXT_MODEL_BUNDLE
from qsafe.bundle import (
    DEFAULT_SIGNATURE_NAME,
    build_bundle,
    default_signature_path,
    pae,
    parse_bundle,
    statement_bytes,
)
from qsafe.errors import FormatError, OutputExistsError
from qsafe.hashing import HashingConfig, Progress
from qsafe.keys import PrivateKey
from qsafe.manifest import Manifest, hash_model

__all__ = ["DEFAULT_SIGNATURE_NAME", "default_signature_path", "sign", "sign_manifest"]

def sign_manifest(manifest: Manifest, key: PrivateKey) -> bytes:
    """Sign a manifest and return the bundle bytes.

    Args:
        manifest: the manifest to sign (from :func:`qsafe.manifest.hash_model`).
        key: the signing key.

    Returns:
        The Sigstore-bundle JSON, UTF-8.
    """
    payload = statement_bytes(manifest)
    signature = key.sign(pae(DSSE_PAYLOAD_TYPE, payload), MLDSA_CONTEXT_MODEL_BUNDLE)
    public = key.public_key()
    return build_bundle(payload, signature, hint=public.model_signing_hint, details=public.key_details,
                        keyid=public.key_id)


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        return Path(os.path.realpath(path)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None


def _refuse_clobber(target: Path, model: Path) -> None:
    if os.path.realpath(target) == os.path.realpath(model) or target.is_dir():
        raise OutputExistsError(f"signature path {target} is the model itself")
    if target.exists():
        try:
            parse_bundle(target.read_bytes()[: 256 << 20])
        except FormatError:
            raise OutputExistsError(f"{target} exists and is not a signature bundle; refusing to overwrite it") from None


def sign(
    model: str | Path,
    key: PrivateKey,
    *,
    signature: str | Path | None = None,
    config: HashingConfig | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Sign a model directory or file and write its signature bundle.

    Args:
        model: the model directory or single file.
        key: the private signing key (:func:`qsafe.keys.load_private_key`).
        signature: where to write the bundle (default :func:`default_signature_path`). A signature inside the
            model directory is left out of the manifest.
        config: hashing parameters (default SHA-256, ``files``, tensor digests on).
        progress: optional ``(advance_bytes, total_bytes)`` callback while hashing.

    Returns:
        The signed manifest.

    Raises:
        OutputExistsError: the signature path is the model, or an existing file that is not a bundle.
        InvalidInputError: refused symlink or special file in the model.
        FormatError: a malformed ``.safetensors`` header (use ``tensor_digests=False`` to sign it as bytes).
    """
    root = Path(model)
    target = Path(signature) if signature is not None else default_signature_path(root)
    _refuse_clobber(target, root)
    cfg = config or HashingConfig()
    rel = _relative_inside(target, root) if root.is_dir() else None
    if rel is not None and rel not in cfg.ignore_paths:
        cfg = dataclasses.replace(cfg, ignore_paths=(*cfg.ignore_paths, rel))
    manifest = hash_model(root, cfg, progress=progress)
    data = sign_manifest(manifest, key)
    with atomic_output(target, inputs=(root,)) as out:
        out.write(data)
    return manifest
