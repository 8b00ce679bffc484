"""The age v1 file format (C2SP age.md) for qsafe: header, STREAM payload, armor, recipients, keys.

The functions here are the in-memory API other qsafe areas use to protect small secrets with a passphrase
(private keys at rest, HE secret contexts); :mod:`qsafe.encryption` is the public streaming API, built on the
streaming names re-exported here. This module is the package's facade: nothing outside ``qsafe._age`` imports its
``_``-modules (tests/test_layers.py checks it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from qsafe._age._armor import BEGIN, ByteSource
from qsafe._age._core import AnyIdentity, AnyRecipient, check_recipients, decrypt_to, read_age, write_age
from qsafe._age._format import VERSION_LINE
from qsafe._age._keys import (
    encode_identity,
    encode_recipient,
    generate,
    identity_file_text,
    parse_identities,
    parse_recipient,
    parse_recipients,
)
from qsafe._age._recipients import DEFAULT_WORK_FACTOR, MAX_WORK_FACTOR, ScryptIdentity, ScryptRecipient

__all__ = [
    "DEFAULT_WORK_FACTOR",
    "MAX_WORK_FACTOR",
    "AnyIdentity",
    "AnyRecipient",
    "ByteSource",
    "ScryptIdentity",
    "ScryptRecipient",
    "check_recipients",
    "decrypt_directory",
    "decrypt_to",
    "decrypt_with_passphrase",
    "encode_identity",
    "encode_recipient",
    "encrypt_directory",
    "encrypt_with_passphrase",
    "generate",
    "identity_file_text",
    "is_age_file",
    "parse_identities",
    "parse_recipient",
    "parse_recipients",
    "read_age",
    "write_age",
]


def encrypt_directory(root: Path, dst: BinaryIO, targets: Sequence[AnyRecipient], *, armor: bool,
                      advance: Callable[[int], None] | None = None) -> None:
    """Write ``root`` as a deterministic tar stream, encrypted to ``targets``, into ``dst`` (tarfile is imported
    only here: single files never need it)."""
    from qsafe._age._tar import tar_stream

    write_age(ByteSource(b"", tar_stream(root)), dst, list(targets), armor=armor,  # type: ignore[arg-type]
              advance=advance)


def decrypt_directory(src: BinaryIO, identities: Sequence[AnyIdentity], extract: Path) -> None:
    """Decrypt an encrypted directory from ``src`` and extract it into the new folder ``extract`` (entries that
    would land outside it, links and special files are refused)."""
    from qsafe._age._tar import extract as extract_tar

    chunks: Iterable[bytes] = read_age(src, list(identities))
    extract_tar(ByteSource(b"", chunks), extract, chunks)  # type: ignore[arg-type]


def encrypt_with_passphrase(
    data: bytes, passphrase: bytes, *, work_factor: int = DEFAULT_WORK_FACTOR, armor: bool = True
) -> bytes:
    """Encrypt ``data`` to an age scrypt recipient (the file's only stanza).

    Args:
        data: the secret to protect.
        passphrase: the passphrase (non-empty bytes).
        work_factor: log2 of scrypt's N (age's default 18, about a second).
        armor: return ASCII-armored text (default) instead of binary age.

    Returns:
        The age file.

    Raises:
        ValueError: empty passphrase, or a work factor outside 1..30.
    """
    if not passphrase:
        raise ValueError("the passphrase is empty")
    if not 1 <= work_factor <= 30:
        raise ValueError("work_factor must be between 1 and 30")
    out = io.BytesIO()
    write_age(io.BytesIO(data), out, [ScryptRecipient(passphrase, work_factor)], armor=armor)
    return out.getvalue()


def decrypt_with_passphrase(data: bytes, passphrase: bytes, *, max_work_factor: int = MAX_WORK_FACTOR) -> bytes:
    """Decrypt an armored or binary age scrypt file.

    Args:
        data: the age file.
        passphrase: the passphrase.
        max_work_factor: refuse files that demand more scrypt work than this (a hostile file could cost hours).

    Returns:
        The plaintext.

    Raises:
        WrongPassphraseError: the passphrase does not open the file.
        NoIdentityMatchedError: the file is an age file but not passphrase-encrypted.
        IntegrityError: the header or payload was modified or truncated.
        FormatError: not an age file, or a work factor above ``max_work_factor``.
    """
    out = io.BytesIO()
    decrypt_to(io.BytesIO(data), [ScryptIdentity(passphrase, max_work_factor)], out.write)
    return out.getvalue()


def is_age_file(data: bytes) -> bool:
    """True when ``data`` starts like a binary or armored age file (a quick sniff, not a validation)."""
    return data.startswith(VERSION_LINE) or data.lstrip(b" \t\r\n").startswith(BEGIN)
