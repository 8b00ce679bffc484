"""Encrypt and decrypt whole age files over binary streams (header + STREAM payload, optional armor)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, Protocol

from qsafe._age._armor import ArmorWriter, ByteSource, dearmor, sniff
from qsafe._age._format import FILE_KEY_SIZE, Header, Stanza, encode_header, parse_header, verify_mac
from qsafe._age._pipeline import Write, seal_to, unseal_to
from qsafe._age._recipients import Kind, ScryptIdentity
from qsafe._age._stream import decrypt_chunks, new_nonce, payload_key, read_nonce
from qsafe.errors import FormatError, NoIdentityMatchedError, UsageError, WrongPassphraseError


class AnyRecipient(Protocol):
    @property
    def kind(self) -> Kind: ...

    def wrap(self, file_key: bytes) -> Stanza: ...


class AnyIdentity(Protocol):
    def unwrap(self, stanza: Stanza) -> bytes | None: ...


def check_recipients(recipients: Sequence[AnyRecipient]) -> None:
    """Enforce age's rules: at least one recipient, scrypt alone, never PQ mixed with classical.

    Raises:
        UsageError: the combination is not allowed.
    """
    kinds = {r.kind for r in recipients}
    if not recipients:
        raise UsageError("no recipient given", hint="pass -r RECIPIENT, -R FILE or -p")
    if "passphrase" in kinds and len(recipients) > 1:
        raise UsageError("a passphrase cannot be combined with other recipients (age's rule)")
    if kinds == {"pq", "classical"}:
        raise UsageError(
            "post-quantum (age1pq1…) and classical (age1…) recipients cannot be mixed in one file",
            hint="a classical recipient would make the file only as strong as X25519; encrypt twice instead",
        )


def write_age(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[AnyRecipient],
    *,
    armor: bool = False,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Encrypt everything read from ``src`` to ``recipients`` and write the age file to ``dst``."""
    check_recipients(recipients)
    file_key = os.urandom(FILE_KEY_SIZE)
    stanzas = [r.wrap(file_key) for r in recipients]
    _write_from_parts(src, dst, stanzas, file_key, new_nonce(), armor=armor, advance=advance)


def _write_from_parts(
    src: BinaryIO, dst: BinaryIO, stanzas: list[Stanza], file_key: bytes, nonce: bytes, *, armor: bool = False,
    advance: Callable[[int], None] | None = None,
) -> None:
    # Deterministic seam: known-answer tests re-create CCTV files from their file key, stanzas and nonce.
    out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armor else dst
    header = encode_header(stanzas, file_key)
    out.write(header)
    out.write(nonce)
    offset = 0 if armor else len(header) + len(nonce)
    seal_to(src, payload_key(file_key, nonce), out.write, advance=advance, offset=offset)
    if isinstance(out, ArmorWriter):
        out.close()


def read_header(src: BinaryIO) -> tuple[Header, ByteSource]:
    """Parse the header of a binary or armored age file; the returned reader is at the payload nonce."""
    armored, reader = sniff(src)
    if armored:
        reader = ByteSource(b"", dearmor(reader))
    return parse_header(reader), reader  # type: ignore[arg-type]


def unwrap_file_key(header: Header, identities: Sequence[AnyIdentity]) -> bytes:
    """Find the file key with one of ``identities`` and check the header MAC with it.

    Raises:
        FormatError: a stanza is malformed or a scrypt stanza is not alone.
        WrongPassphraseError: only passphrases were given and none opens the scrypt stanza.
        NoIdentityMatchedError: no identity opens any stanza.
        IntegrityError: the file key was found but the header MAC does not verify.
    """
    types = [s.type for s in header.stanzas]
    if "scrypt" in types and len(types) != 1:
        raise FormatError("a scrypt stanza must be the only stanza of an age file")
    for identity in identities:
        for stanza in header.stanzas:
            file_key = identity.unwrap(stanza)
            if file_key is None:
                continue
            if len(file_key) != FILE_KEY_SIZE:
                raise FormatError("an unwrapped file key has the wrong length")
            verify_mac(header, file_key)
            return file_key
    if types == ["scrypt"] and identities and all(isinstance(i, ScryptIdentity) for i in identities):
        raise WrongPassphraseError("the passphrase does not decrypt this file")
    raise NoIdentityMatchedError(
        f"no identity matched any of the file's {len(types)} recipient stanza(s) ({', '.join(sorted(set(types)))})"
    )


def decrypt_to(
    src: BinaryIO, identities: Sequence[AnyIdentity], write: Write, *, advance: Callable[[int], None] | None = None
) -> None:
    """Decrypt an age file, passing only authenticated plaintext to ``write`` in order (parallel pipeline).

    Raises:
        FormatError, NoIdentityMatchedError, WrongPassphraseError, IntegrityError: see :func:`unwrap_file_key`;
            IntegrityError also for a modified or truncated payload.
    """
    header, reader = read_header(src)
    file_key = unwrap_file_key(header, identities)
    nonce = read_nonce(reader)  # type: ignore[arg-type]
    unseal_to(reader, payload_key(file_key, nonce), write, advance=advance)  # type: ignore[arg-type]


def read_age(src: BinaryIO, identities: Sequence[AnyIdentity]) -> Iterator[bytes]:
    """Open an age file: parse and authenticate the header now, then yield authenticated plaintext chunks.

    This is the sequential path, for consumers that need a readable plaintext stream (directory extraction).

    Raises:
        FormatError, NoIdentityMatchedError, WrongPassphraseError, IntegrityError: see :func:`unwrap_file_key`;
            the returned iterator raises IntegrityError on a modified or truncated payload.
    """
    header, reader = read_header(src)
    file_key = unwrap_file_key(header, identities)
    nonce = read_nonce(reader)  # type: ignore[arg-type]
    return decrypt_chunks(reader, payload_key(file_key, nonce))  # type: ignore[arg-type]
