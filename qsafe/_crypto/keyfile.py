"""Secret files at rest: a PEM (or identity) wrapped in an armored age file with one scrypt recipient.

The age code lives in :mod:`qsafe._age` (shared with encryption); this module only decides the policy: the
work factor, and how decryption failures read for a key file.
"""

from __future__ import annotations

import os
from pathlib import Path

from qsafe._io import atomic_output, check_writable
from qsafe.errors import (
    IntegrityError,
    KeyFileError,
    NoIdentityMatchedError,
    OutputExistsError,
    QsafeError,
    UsageError,
    WrongPassphraseError,
)

__all__ = [
    "DEFAULT_WORK_FACTOR", "WORK_FACTOR_ENV", "check_free", "is_protected", "protect", "unprotect", "work_factor",
    "write_pair",
]

# age's scrypt recipient stores log2(N). 18 is age's own default (~1 s on this class of machine).
DEFAULT_WORK_FACTOR = 18
# TEST-ONLY knob: lets the test suite write keys quickly. Never set it in production; values below the default
# make passphrase guessing cheaper. It only changes what is written: reading accepts any factor age accepts.
WORK_FACTOR_ENV = "QSAFE_SCRYPT_WORK_FACTOR"


def work_factor() -> int:
    """The scrypt work factor for new key files: 18, or the test-only ``$QSAFE_SCRYPT_WORK_FACTOR``."""
    value = os.environ.get(WORK_FACTOR_ENV)
    if not value:
        return DEFAULT_WORK_FACTOR
    try:
        factor = int(value)
    except ValueError as exc:
        raise KeyFileError(f"${WORK_FACTOR_ENV} must be an integer, not {value!r}") from exc
    if not 1 <= factor <= 30:
        raise KeyFileError(f"${WORK_FACTOR_ENV} must be between 1 and 30")
    return factor


def is_protected(data: bytes) -> bool:
    """True when ``data`` is an age file, armored or binary (a sniff of its first line, no decryption)."""
    from qsafe import _age  # imported on use: `qsafe verify` never needs the age code

    return bool(_age.is_age_file(data))


def protect(secret: bytes, passphrase: bytes, *, factor: int | None = None) -> bytes:
    """Encrypt ``secret`` to an armored age file with a scrypt recipient."""
    if not passphrase:
        raise KeyFileError("refusing to protect a key with an empty passphrase")
    from qsafe import _age

    return bytes(_age.encrypt_with_passphrase(secret, passphrase, work_factor=factor or work_factor(), armor=True))


def unprotect(data: bytes, passphrase: bytes | None, *, what: str) -> bytes:
    """Decrypt a protected secret file.

    Raises:
        KeyFileError: no passphrase was given ("key is passphrase-protected").
        WrongPassphraseError: the passphrase does not open it.
        IntegrityError: the file was modified.
    """
    if passphrase is None:
        raise KeyFileError(f"{what}: the key is passphrase-protected and no passphrase was given",
                           hint="give the passphrase: --passphrase-file FILE, $QSAFE_PASSPHRASE or the prompt on the "
                                "command line; passphrase=... or passphrase_file=... in Python")
    from qsafe import _age

    try:
        return bytes(_age.decrypt_with_passphrase(data, passphrase))
    except WrongPassphraseError as exc:
        raise WrongPassphraseError(f"{what}: wrong passphrase") from exc
    except NoIdentityMatchedError as exc:
        raise KeyFileError(f"{what}: an age file encrypted to a recipient, not a passphrase-protected key") from exc
    except IntegrityError as exc:
        raise IntegrityError(f"{what}: the protected key file was modified or truncated") from exc
    except QsafeError as exc:
        raise KeyFileError(f"{what}: cannot open the protected key: {exc}") from exc


def check_free(prefix: str | os.PathLike[str], *, overwrite: bool) -> tuple[Path, Path]:
    """``(PREFIX.pub, PREFIX.key)``; raise OutputExistsError if either exists and ``overwrite`` is False.

    Also refuses (UsageError / OutputExistsError) a prefix whose folder does not exist or whose paths are
    directories, so that keygen fails before asking for a passphrase and never writes half a pair.
    """
    if not Path(prefix).name:
        raise UsageError(f"the output prefix {os.fspath(prefix)!r} names no file",
                         hint="pass a prefix such as --out keys/release (writes release.pub and release.key)")
    pub_path, key_path = Path(f"{os.fspath(prefix)}.pub"), Path(f"{os.fspath(prefix)}.key")
    for path in (pub_path, key_path):
        check_writable(path)
    existing = [str(p) for p in (pub_path, key_path) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"refusing to overwrite {', '.join(existing)}",
                                hint="choose another --out prefix, or pass --force to replace the files")
    return pub_path, key_path


def write_pair(prefix: str | os.PathLike[str], public: bytes, secret: bytes, *, overwrite: bool) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (0o600) then ``PREFIX.pub`` (0o644), each atomically; refuse to overwrite."""
    pub_path, key_path = check_free(prefix, overwrite=overwrite)
    with atomic_output(key_path, mode=0o600, overwrite=overwrite) as out:
        out.write(secret)
    with atomic_output(pub_path, mode=0o644, overwrite=overwrite) as out:
        out.write(public)
    return pub_path, key_path
