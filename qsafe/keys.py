"""Signing keys: generate, save, load, sign and verify, for every installed signature scheme.

Schemes come from the ``qsafe.signers`` registry (:mod:`qsafe.signers`): qsafe's built-ins and any plugin's
(e.g. SLH-DSA and Falcon from ``plugins/qsafe-liboqs``). A key whose algorithm a known plugin provides but that
is not installed fails with :class:`~qsafe.errors.MissingDependencyError` (exit 5) naming the plugin.

Built-in algorithms: ``ml-dsa-44``, ``ml-dsa-65`` (default), ``ml-dsa-87`` (FIPS 204, pure mode, with a context string),
``ml-dsa-65-ed25519`` (and ``ml-dsa-44-ed25519``): composite ML-DSA + Ed25519 per
draft-ietf-lamps-pq-composite-sigs-19 (both halves must verify), and ``ecdsa-p256`` (classical, for
model-signing interop: ECDSA P-256 / SHA-256, DER signatures; P-384 and P-521 public keys are read too).

Private keys are stored as PKCS#8 PEM (seed form for ML-DSA); when protected, that PEM is wrapped in an armored
age file with a scrypt recipient (see :mod:`qsafe._age`). Every public key has a key id: ``sha256:`` + hex SHA-256
of its DER SubjectPublicKeyInfo (the bytes that name the algorithm and the key).

Verification raises :class:`~qsafe.errors.SignatureError`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from qsafe import _limits, _passphrase
from qsafe import signers as _signers
from qsafe._crypto import der as _der
from qsafe._crypto import keyfile as _keyfile
from qsafe._passphrase import PassphraseSource
from qsafe.errors import FormatError, InvalidInputError, KeyFileError, SignatureError

__all__ = [
    "CLASSICAL_ALGORITHMS",
    "COMPOSITE_DRAFT_REVISION",
    "DEFAULT_SIGNATURE_ALGORITHM",
    "SIGNATURE_ALGORITHMS",
    "PassphraseSource",
    "PrivateKey",
    "PublicKey",
    "generate",
    "is_protected_key_file",
    "load_private_key",
    "load_public_key",
    "load_public_keys",
    "private_key_from_der",
    "private_key_from_pem",
    "public_key_from_der",
    "public_key_from_pem",
    "signature_algorithms",
    "write_key_pair",
]

DEFAULT_SIGNATURE_ALGORITHM = "ml-dsa-65"
COMPOSITE_DRAFT_REVISION = "draft-ietf-lamps-pq-composite-sigs-19"

# qsafe's built-in algorithms that keygen offers (plugins add theirs: see signature_algorithms()).
SIGNATURE_ALGORITHMS: tuple[str, ...] = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87", "ml-dsa-65-ed25519",
                                         "ml-dsa-44-ed25519", "ecdsa-p256")
# Built-in classical-only algorithms: a forgery needs no quantum-safe break. Verify-only curves included.
CLASSICAL_ALGORITHMS: frozenset[str] = frozenset({"ecdsa-p256", "ecdsa-p384", "ecdsa-p521"})

_PUBLIC_LABEL, _PRIVATE_LABEL, _SEC1_LABEL = "PUBLIC KEY", "PRIVATE KEY", "EC PRIVATE KEY"


def signature_algorithms() -> list[str]:
    """Every installed algorithm keygen can generate: the built-ins, then plugins' (``qsafe.signers``)."""
    return _signers.signature_algorithms()


def _adapt(key: Any, algorithm: str) -> Any:
    """Accept a scheme's key handle or a raw cryptography key (older callers) and return a handle."""
    if hasattr(key, "spki_der") or hasattr(key, "pkcs8_der"):
        return key
    from qsafe._crypto import algorithms as _alg

    name, adapter = _alg.wrap_cryptography_key(key)
    if name != algorithm:
        raise KeyFileError(f"key is {name}, not {algorithm}")
    return adapter


@dataclass(frozen=True)
class PublicKey:
    """A public verification key.

    Attributes:
        algorithm: qsafe's algorithm name (``ml-dsa-65``, ``ml-dsa-65-ed25519``, ``ecdsa-p256``, ...).
    """

    algorithm: str
    _key: Any = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", _adapt(self._key, self.algorithm))

    def __eq__(self, other: object) -> bool:
        """Equal when algorithm and SubjectPublicKeyInfo are the same (two loads of one key compare equal)."""
        return isinstance(other, PublicKey) and self.to_der() == other.to_der()

    def __hash__(self) -> int:
        return hash(self.to_der())

    def __repr__(self) -> str:
        return f"PublicKey({self.algorithm!r}, {self.key_id})"

    @property
    def scheme(self) -> _signers.SignatureScheme:
        """The registered scheme this key belongs to."""
        return _signers.scheme(self.algorithm)

    @property
    def post_quantum(self) -> bool:
        """True when a forgery needs breaking a post-quantum algorithm (ML-DSA, SLH-DSA, ...; alone or composite)."""
        return bool(self.scheme.post_quantum)

    @property
    def key_id(self) -> str:
        """``sha256:`` + hex SHA-256 of the DER SubjectPublicKeyInfo."""
        return "sha256:" + hashlib.sha256(self.to_der()).hexdigest()

    @property
    def description(self) -> str:
        """Human-readable algorithm, with the standard or pinned draft revision it follows."""
        return str(self.scheme.description)

    @property
    def key_details(self) -> str:
        """Sigstore-style ``publicKey.keyDetails`` name; composites carry the pinned draft revision."""
        return str(self.scheme.key_details)

    @property
    def model_signing_hint(self) -> str:
        """model-signing's ``publicKey.hint``: hex SHA-256 of the PEM public key."""
        return hashlib.sha256(self.to_pem()).hexdigest()

    def to_der(self) -> bytes:
        """DER SubjectPublicKeyInfo."""
        return bytes(self._key.spki_der())

    def to_pem(self) -> bytes:
        """PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo), the ``PREFIX.pub`` file format."""
        return _der.pem_encode(_PUBLIC_LABEL, self.to_der())

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Verify ``signature`` over ``data`` under the ``context`` string.

        Args:
            signature: the signature bytes (composite: ML-DSA || Ed25519; ECDSA: DER).
            data: the signed message.
            context: the ML-DSA / composite context string (ignored by ECDSA, which has none).

        Raises:
            SignatureError: the signature does not verify with this key (for composites: either half fails).
        """
        try:
            self._key.verify(bytes(signature), bytes(data), bytes(context))
        except (InvalidSignature, SignatureError) as exc:
            raise SignatureError(f"signature does not verify with key {self.key_id} ({self.algorithm})") from exc


@dataclass(frozen=True)
class PrivateKey:
    """A private signing key."""

    algorithm: str
    _key: Any = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", _adapt(self._key, self.algorithm))

    def __eq__(self, other: object) -> bool:
        """Equal when the PKCS#8 encodings match (compared in constant time)."""
        return isinstance(other, PrivateKey) and hmac.compare_digest(self._key.pkcs8_der(), other._key.pkcs8_der())

    def __hash__(self) -> int:
        return hash(self.public_key())

    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self.algorithm, self._key.public())

    def sign(self, data: bytes, context: bytes) -> bytes:
        """Sign ``data`` under ``context`` (ML-DSA: hedged FIPS 204 pure mode; ECDSA ignores ``context``).

        Raises:
            InvalidInputError: the context string is longer than 255 bytes.
        """
        if len(context) > 255:
            raise InvalidInputError("signature context string is longer than 255 bytes")
        return bytes(self._key.sign(bytes(data), bytes(context)))

    def to_pem(self) -> bytes:
        """Unprotected PKCS#8 PEM (seed form for ML-DSA). Protect it before it touches disk."""
        return _der.pem_encode(_PRIVATE_LABEL, bytes(self._key.pkcs8_der()))

    def to_file_bytes(self, passphrase: bytes | None) -> bytes:
        """The ``PREFIX.key`` contents: the PEM, age-scrypt protected unless ``passphrase`` is None."""
        pem = self.to_pem()
        return pem if passphrase is None else _keyfile.protect(pem, passphrase)


def generate(algorithm: str = DEFAULT_SIGNATURE_ALGORITHM) -> PrivateKey:
    """Generate a fresh signing key.

    Args:
        algorithm: an installed algorithm (:func:`signature_algorithms`).

    Returns:
        The new private key.

    Raises:
        KeyFileError: unknown algorithm, or one that is verify-only.
        MissingDependencyError: a known plugin provides the algorithm but is not installed (exit 5).
    """
    scheme = _signers.scheme(algorithm)
    if not scheme.keygen:
        raise KeyFileError(f"{algorithm} is verify-only here; choose one of {', '.join(signature_algorithms())}")
    return PrivateKey(algorithm, scheme.generate())


def _parse(der: bytes, *, private: bool) -> tuple[str, Any]:
    """(algorithm, key handle) of a DER SPKI or PKCS#8: the schemes registered for its OID, tried in order."""
    oid = _signers.oid_of(der, private=private)
    candidates = _signers.schemes_for_oid(oid)
    if not candidates:
        missing = _signers.missing_plugin_error(oid_der=oid)
        if missing is not None:
            raise missing
        raise KeyFileError(f"unsupported {'private' if private else 'public'} key algorithm (OID {_der.oid_str(oid)})",
                           hint="no installed signature scheme knows this key; plugins add schemes (docs/plugins.md)")
    error: KeyFileError | None = None
    for scheme in candidates:
        try:
            handle = scheme.private_from_pkcs8(der) if private else scheme.public_from_spki(der)
            return scheme.name, handle
        except KeyFileError as exc:
            error = error or exc
    assert error is not None
    raise error


def _single_block(data: bytes, label: str, source: str) -> bytes:
    blocks = _der.pem_blocks(data)
    if not blocks:
        raise KeyFileError(f"{source}: no PEM block found (expected {label})", hint=_not_pem_hint(data))
    if len(blocks) > 1:
        raise KeyFileError(f"{source}: {len(blocks)} PEM blocks; expected exactly one {label}")
    found, der = blocks[0]
    if found == _PUBLIC_LABEL and label == _PRIVATE_LABEL:
        raise KeyFileError(f"{source} is a public key; a private key is needed here",
                           hint="pass the PREFIX.key file that `qsafe keygen --out PREFIX` wrote, not PREFIX.pub")
    if found != label:
        raise KeyFileError(f"{source}: PEM block is {found}, expected {label}", hint=_label_hint(found))
    return der


def _not_pem_hint(data: bytes) -> str | None:
    """Name the file when it is an age encryption identity or recipient given where a signing key belongs."""
    text = data.lstrip()
    if text.startswith(b"AGE-SECRET-KEY-"):
        return "this is an encryption identity (age), not a signing key: sign with a key from `qsafe keygen`"
    if text.startswith(b"age1"):
        return "this is an encryption recipient (age), not a signing public key: pass the signer's .pub file"
    return None


def _label_hint(found: str) -> str | None:
    if found == "AGE ENCRYPTED FILE":
        return "this is a passphrase-protected private key: pass the .pub file"
    if found == "ENCRYPTED PRIVATE KEY":
        return "qsafe protects keys with age-scrypt, not PKCS#8 encryption; export the key unencrypted first"
    if found.endswith("PRIVATE KEY"):
        return "this is a private key: pass the .pub file"
    if found == "PUBLIC KEY":
        return "this is a public key: pass the .key file"
    return None


def private_key_from_pem(pem: bytes, *, source: str = "private key") -> PrivateKey:
    """Parse an unprotected PKCS#8 PEM private key (or an OpenSSL ``EC PRIVATE KEY``, as model-signing users hold).

    Raises:
        KeyFileError: not a PKCS#8 ``PRIVATE KEY`` of a supported algorithm.
    """
    blocks = _der.pem_blocks(pem)
    if len(blocks) == 1 and blocks[0][0] == _SEC1_LABEL:
        # OpenSSL's traditional EC key form, what model-signing's docs make with `openssl ec`.
        from qsafe._crypto import algorithms as _alg

        name, adapter = _alg.private_from_sec1(blocks[0][1])
        return PrivateKey(name, adapter)
    name, adapter = _parse(_single_block(pem, _PRIVATE_LABEL, source), private=True)
    return PrivateKey(name, adapter)


def private_key_from_der(pkcs8: bytes) -> PrivateKey:
    """Parse an unencrypted DER PKCS#8 private key of any installed scheme.

    Raises:
        KeyFileError: malformed, or not a supported algorithm.
        MissingDependencyError: the key's algorithm needs a plugin that is not installed (exit 5).
    """
    name, adapter = _parse(bytes(pkcs8), private=True)
    return PrivateKey(name, adapter)


def public_key_from_der(spki: bytes) -> PublicKey:
    """Parse a DER SubjectPublicKeyInfo.

    Raises:
        KeyFileError: malformed, or not a supported algorithm.
        MissingDependencyError: the key's algorithm needs a plugin that is not installed (exit 5).
    """
    name, adapter = _parse(bytes(spki), private=False)
    return PublicKey(name, adapter)


def public_key_from_pem(pem: bytes, *, source: str = "public key") -> PublicKey:
    """Parse one PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo), e.g. a qsafe ``.pub`` or a model-signing EC key.

    Raises:
        KeyFileError: not exactly one supported public key.
    """
    return public_key_from_der(_single_block(pem, _PUBLIC_LABEL, source))


# A key file (or an allowlist of thousands of public keys) is kilobytes; reading at most this much keeps a model
# passed as --key by mistake from being read whole into memory.
MAX_KEY_FILE_BYTES = _limits.KEY_FILE_MAX_BYTES


def _read(path: str | os.PathLike[str]) -> bytes:
    from qsafe._files import read_regular

    try:  # never blocks on a FIFO, refuses a directory or device, reserves only what the file holds
        return read_regular(path, "key file", max_bytes=MAX_KEY_FILE_BYTES)
    except FormatError as exc:
        message = exc.message
        if "larger than" in message:
            message = f"{path} is larger than {MAX_KEY_FILE_BYTES >> 20} MiB: not a key file"
        raise KeyFileError(message, hint="check the key path and that it is the right kind of key") from None


def is_protected_key_file(path: str | Path) -> bool:
    """True when the key file is passphrase-protected (an age file), so a caller knows to ask for a passphrase.

    Raises:
        KeyFileError: the file cannot be read.
    """
    return _keyfile.is_protected(_read(path))


def load_private_key(path: str | os.PathLike[str], passphrase: PassphraseSource = None, *,
                     passphrase_file: str | os.PathLike[str] | None = None) -> PrivateKey:
    """Load a private key file (``PREFIX.key``): the one loader of signing keys, protected or not.

    Args:
        path: the key file: age-scrypt protected PEM, or plain PKCS#8 PEM (written with --no-passphrase).
        passphrase: unlocks a protected key: bytes, str, or a callable returning one that is called only when
            the file is protected (so an unprotected key never prompts); ignored for an unprotected key.
        passphrase_file: or a file whose first line is the passphrase (read only for a protected key).

    Returns:
        The private key.

    Raises:
        KeyFileError: unreadable or malformed file (a public key says so), or "key is passphrase-protected" when
            no passphrase was given.
        WrongPassphraseError: the passphrase does not open the key.
        IntegrityError: the protected file was modified.
        UsageError: both ``passphrase`` and ``passphrase_file``, or an unreadable passphrase file.
    """
    data = _read(path)
    if _keyfile.is_protected(data):
        data = _keyfile.unprotect(data, _passphrase.resolve(passphrase, passphrase_file), what=os.fspath(path))
    return private_key_from_pem(data, source=os.fspath(path))


def load_public_key(path: str | Path) -> PublicKey:
    """Load one public key file (``PREFIX.pub``, or a model-signing EC public key PEM).

    Raises:
        KeyFileError: unreadable file, or not exactly one supported public key.
    """
    data = _read(path)
    try:
        return public_key_from_pem(data, source=str(path))
    except KeyFileError:
        if _keyfile.is_protected(data):  # only now: the verify path never imports the age code
            raise KeyFileError(f"{path} is a protected private key", hint="pass the .pub file") from None
        raise


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Load every public key in a file of concatenated PEMs, or in every ``*.pub`` file of a directory.

    Used as an allowlist (e.g. federated clients). Duplicates (same key id) are kept once, in first-seen order.

    Raises:
        KeyFileError: a file is unreadable or holds a non-public-key block, or no key is found at all.
    """
    p = Path(path)
    files = sorted(p.glob("*.pub")) if p.is_dir() else [p]
    keys: dict[str, PublicKey] = {}
    hint = None
    for f in files:
        data = _read(f)
        hint = hint or _not_pem_hint(data)
        for label, der in _der.pem_blocks(data):
            if label != _PUBLIC_LABEL:
                raise KeyFileError(f"{f}: PEM block is {label}, expected {_PUBLIC_LABEL}", hint=_label_hint(label))
            key = public_key_from_der(der)
            keys.setdefault(key.key_id, key)
    if not keys:
        if p.is_dir() and not files:
            raise KeyFileError(f"no public key found in {path}: the directory has no *.pub file")
        raise KeyFileError(f"no public key found in {path}", hint=hint)
    return list(keys.values())


def write_key_pair(
    key: PrivateKey, prefix: str | Path, passphrase: bytes | None, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``PREFIX.pub`` (0o644) and ``PREFIX.key`` (0o600), each atomically.

    Args:
        key: the private key.
        prefix: output path prefix.
        passphrase: protects ``PREFIX.key`` with age-scrypt; None writes it unprotected (explicit opt-out).
        overwrite: replace existing files; otherwise an existing file is an error and nothing is written.

    Returns:
        (public key path, private key path).

    Raises:
        OutputExistsError: a file exists and ``overwrite`` is False.
    """
    _keyfile.check_free(prefix, overwrite=overwrite)  # before any (slow) scrypt work
    return _keyfile.write_pair(prefix, key.public_key().to_pem(), key.to_file_bytes(passphrase), overwrite=overwrite)
