"""The HE context: scheme parameters plus TenSEAL keys, in a public form (clients, aggregator) and a secret form
(key authority only).

File formats (see docs/federated.md):

- ``public.ctx``: container ``qsafe-he-context/v1`` with header ``{"format_version": 1, "kind": "public",
  "scheme": {...}}`` and one blob, the TenSEAL context holding the public key only (plus relinearization and
  Galois keys when the scheme asks for ``norm_keys``).
- ``secret.ctx``: container ``qsafe-he-secret-context/v1`` with header ``{"fingerprint": ..., "format_version": 1,
  "kind": "secret"}`` and two blobs: the exact ``public.ctx`` bytes and the TenSEAL secret key. At rest it is
  wrapped in an armored age file with a scrypt (passphrase) recipient unless written with no passphrase.

The **fingerprint** is ``sha256:`` + hex SHA-256(``FL_CONTEXT_FINGERPRINT_LABEL`` || ``public.ctx`` bytes).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

from qsafe import _limits
from qsafe._files import read_regular
from qsafe._he import cipher, container
from qsafe._he.params import SchemeParams, bfv_packed, ckks, params_from_json
from qsafe._io import atomic_output
from qsafe._labels import FL_CONTEXT_FINGERPRINT_LABEL, FL_CONTEXT_MAGIC, FL_SECRET_CONTEXT_MAGIC
from qsafe._passphrase import PassphraseSource, resolve
from qsafe.errors import FormatError, HEMismatchError, KeyFileError, MissingDependencyError, UsageError

__all__ = ["HEContext", "is_protected"]

_AGE_PREFIXES = (b"-----BEGIN AGE ENCRYPTED FILE-----", b"age-encryption.org/v1")
# A CKKS public context with norm keys is ~35 MB; armored secret contexts are a few MB.
_MAX_CONTEXT_BYTES = _limits.FL_CONTEXT_MAX_BYTES


def is_protected(data: bytes) -> bool:
    """True when ``data`` is an age file (a passphrase-protected secret context)."""
    return data.lstrip().startswith(_AGE_PREFIXES)


def _age() -> Any:
    try:
        return importlib.import_module("qsafe._age")
    except ImportError as exc:  # pragma: no cover - until the encryption module is merged
        raise MissingDependencyError("passphrase protection needs qsafe._age, which this build lacks",
                                     hint="write the context with --no-passphrase") from exc


class HEContext:
    """Scheme parameters and keys. ``public()`` drops the secret key; the fingerprint names the public part."""

    def __init__(self, params: SchemeParams, public_file: bytes, secret_key: bytes | None = None,
                 _tenseal: Any = None) -> None:
        self.params = params
        self._public_file = public_file
        self._secret_key = secret_key
        self._ts_public: Any = None
        self._layout: Any = None
        self._ts_secret: Any = _tenseal if secret_key is not None else None
        self.fingerprint = "sha256:" + hashlib.sha256(FL_CONTEXT_FINGERPRINT_LABEL + public_file).hexdigest()

    @classmethod
    def generate(cls, scheme: str = "bfv-packed", *, clip: float = 1.0, max_clients: int = 1024,
                 norm_keys: bool = False) -> HEContext:
        """Make fresh keys for ``scheme``.

        Args:
            scheme: ``"bfv-packed"`` (default; exact sums, 7-10 bytes per value on the wire by ``max_clients``)
                or ``"ckks"``.
            clip: every client value must satisfy ``|x| <= clip``.
            max_clients: the most updates one aggregate may sum; ``bfv-packed`` sizes its moduli to it (10: 8 bytes
                per value and about twice as fast to encrypt as for the default 1024: 10 bytes).
            norm_keys: CKKS only: publish relinearization + Galois keys so an encrypted squared norm can be
                computed from public material (see :func:`qsafe.federated.encrypted_squared_norm`).

        Returns:
            A secret context (holding the secret key).

        Raises:
            UsageError: unknown scheme or invalid parameters.
            MissingDependencyError: TenSEAL is not installed.
        """
        if scheme == "bfv-packed":
            if norm_keys:
                raise UsageError("norm keys need the ckks scheme: packed BFV values cannot be squared")
            params = bfv_packed(clip=clip, max_clients=max_clients)
        elif scheme == "ckks":
            params = ckks(clip=clip, max_clients=max_clients, norm_keys=norm_keys)
        else:
            raise UsageError(f"unknown HE scheme {scheme!r}; choose bfv-packed or ckks")
        ctx = cipher.new_context(params)
        header = container.canonical_json({"format_version": 1, "kind": "public", "scheme": params.to_json()})
        public_file = container.encode(FL_CONTEXT_MAGIC, header, [cipher.public_context_bytes(ctx, params)])
        return cls(params, public_file, cipher.secret_context_bytes(ctx), _tenseal=ctx)

    @property
    def has_secret(self) -> bool:
        """True when this context can decrypt."""
        return self._secret_key is not None

    def public(self) -> HEContext:
        """The same context without the secret key (what clients and the aggregator get)."""
        return HEContext(self.params, self._public_file)

    def public_bytes(self) -> bytes:
        """The ``public.ctx`` file content."""
        return self._public_file

    def secret_bytes(self) -> bytes:
        """The unprotected ``secret.ctx`` content. Protect it before it touches disk.

        Raises:
            KeyFileError: this is a public context.
        """
        if self._secret_key is None:
            raise KeyFileError("this HE context is public: it holds no secret key")
        header = container.canonical_json({"fingerprint": self.fingerprint, "format_version": 1, "kind": "secret"})
        return container.encode(FL_SECRET_CONTEXT_MAGIC, header, [self._public_file, self._secret_key])

    def tenseal_public(self) -> Any:
        """The TenSEAL context used to encrypt and add (public key only). Internal to qsafe."""
        if self._ts_public is None:
            self._ts_public = cipher.load_context(_public_blob(self._public_file)[1], self.params, secret=False)
        return self._ts_public

    def raw_layout(self) -> Any:
        """The ciphertext wire layout of this context (a reference encryption, made once). Internal to qsafe."""
        if self._layout is None:
            from qsafe._he import raw

            self._layout = raw.reference_layout(self.params, self.tenseal_public())
        return self._layout

    def tenseal_secret(self) -> Any:
        """The TenSEAL context used to decrypt. Internal to qsafe.

        Raises:
            KeyFileError: this is a public context.
        """
        if self._secret_key is None:
            raise KeyFileError("decryption needs the secret HE context, not the public one",
                               hint="pass the key authority's secret.ctx (--secret)")
        if self._ts_secret is None:
            self._ts_secret = cipher.load_context(self._secret_key, self.params, secret=True)
        return self._ts_secret

    @classmethod
    def from_bytes(cls, data: bytes, passphrase: PassphraseSource = None) -> HEContext:
        """Parse a ``public.ctx`` or ``secret.ctx`` (protected or not). ``passphrase``: bytes, str, or a callable
        asked only when the file is protected.

        Raises:
            FormatError: not a context file, or inconsistent.
            UsageError: the file is protected and no passphrase was given.
            WrongPassphraseError: the passphrase does not open it.
        """
        if is_protected(data):
            secret = resolve(passphrase)
            if secret is None:
                raise UsageError("the secret HE context is passphrase-protected and no passphrase was given")
            data = _age().decrypt_with_passphrase(data, secret)
        if data.startswith(FL_CONTEXT_MAGIC):
            params, _ = _public_blob(data)
            return cls(params, data)
        box = container.decode(data, FL_SECRET_CONTEXT_MAGIC, "HE context file")
        if set(box.header) != {"fingerprint", "format_version", "kind"} or box.header["kind"] != "secret" \
                or box.header["format_version"] != 1 or len(box.blobs) != 2:
            raise FormatError("malformed secret HE context header")
        params, _ = _public_blob(box.blobs[0])
        ctx = cls(params, box.blobs[0], box.blobs[1])
        if ctx.fingerprint != box.header["fingerprint"]:
            raise FormatError("the secret HE context's public part does not match its fingerprint")
        return ctx

    @classmethod
    def load(cls, path: str | Path, passphrase: PassphraseSource = None) -> HEContext:
        """Read a context file (see :meth:`from_bytes`)."""
        try:
            data = read_regular(path, "HE context", max_bytes=_MAX_CONTEXT_BYTES)
        except FormatError as exc:
            raise KeyFileError(exc.message, hint="check the path: public.ctx or secret.ctx of `qsafe fl init`") from None
        return cls.from_bytes(data, passphrase)

    def require_fingerprint(self, expected: str) -> None:
        """Refuse this context unless its fingerprint is ``expected`` (a client pins the key authority's context).

        Raises:
            HEMismatchError: another context (an aggregator or attacker could hand out its own public key).
        """
        if self.fingerprint != expected:
            raise HEMismatchError(f"the HE context is {self.fingerprint}, not the pinned {expected}",
                                  hint="get public.ctx from the key authority again and compare fingerprints")

    def save_public(self, path: str | Path) -> None:
        """Write ``public.ctx`` atomically."""
        with atomic_output(path) as out:
            out.write(self._public_file)

    def save_secret(self, path: str | Path, passphrase: bytes | None) -> None:
        """Write ``secret.ctx`` atomically with mode 0600; ``passphrase=None`` writes it unprotected."""
        data = self.secret_bytes()
        if passphrase is not None:
            data = _age().encrypt_with_passphrase(data, passphrase, armor=True)
        with atomic_output(path, mode=0o600) as out:
            out.write(data)


def _public_blob(data: bytes) -> tuple[SchemeParams, bytes]:
    box = container.decode(data, FL_CONTEXT_MAGIC, "HE context file")
    if set(box.header) != {"format_version", "kind", "scheme"} or box.header["kind"] != "public" \
            or box.header["format_version"] != 1 or len(box.blobs) != 1 or box.signature:
        raise FormatError("malformed public HE context header")
    return params_from_json(box.header["scheme"]), box.blobs[0]
