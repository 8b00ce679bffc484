"""Post-quantum file encryption in the age v1 format.

Files are encrypted to ``age1pq1…`` recipients (ML-KEM-768 + X25519 hybrid, age v1.3 ``mlkem768x25519``), to
classical ``age1…`` X25519 recipients, or to a passphrase (scrypt), and interoperate with age and typage.
Decryption writes to a temporary file renamed into place only after the last chunk authenticated; to a file
object it releases only authenticated chunks.

Example:
    >>> identity, recipient = generate_identity()
    >>> encrypt("model.safetensors", "model.safetensors.age", recipients=[recipient])
    >>> decrypt("model.safetensors.age", "model.safetensors", identities=[identity])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, TypeAlias

from qsafe._age import (
    DEFAULT_WORK_FACTOR,
    MAX_WORK_FACTOR,
    AnyIdentity,
    AnyRecipient,
    ScryptIdentity,
    ScryptRecipient,
    check_recipients,
    decrypt_directory,
    decrypt_to,
    decrypt_with_passphrase,
    encode_identity,
    encode_recipient,
    encrypt_directory,
    generate,
    identity_file_text,
    is_age_file,
    parse_identities,
    parse_recipient,
    parse_recipients,
    write_age,
)
from qsafe._io import atomic_output
from qsafe._passphrase import PassphraseSource, resolve
from qsafe.errors import FormatError, KeyFileError, UsageError

__all__ = [
    "DEFAULT_WORK_FACTOR",
    "MAX_WORK_FACTOR",
    "decrypt",
    "encrypt",
    "generate_identity",
    "identity_file_text",
    "load_identities",
    "load_recipients",
]

PathOrFile: TypeAlias = "str | os.PathLike[str] | BinaryIO | IO[bytes]"


def generate_identity(algorithm: str = "ml-kem-768-x25519") -> tuple[str, str]:
    """Generate an age identity.

    Args:
        algorithm: ``"ml-kem-768-x25519"`` (post-quantum hybrid, the default) or ``"x25519"`` (classical).

    Returns:
        ``(identity, recipient)``: ``("AGE-SECRET-KEY-PQ-1…", "age1pq1…")`` or ``("AGE-SECRET-KEY-1…", "age1…")``.

    Raises:
        UsageError: unknown algorithm.
    """
    identity = generate(algorithm)
    return encode_identity(identity), encode_recipient(identity.recipient())


def load_recipients(recipients: Sequence[str] = (), recipients_files: Sequence[str | os.PathLike[str]] = ()
                    ) -> list[AnyRecipient]:
    """Parse recipient strings and recipients files (one per line, ``#`` comments).

    Raises:
        KeyFileError: a recipient is malformed or unsupported, or a file cannot be read.
    """
    parsed: list[AnyRecipient] = [parse_recipient(r) for r in recipients]
    for path in recipients_files:
        parsed.extend(parse_recipients(_read_text(path, "recipients file")))
    return parsed


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc}") from exc


def _passphrase(source: PassphraseSource, what: str) -> bytes:
    secret = resolve(source)  # a callable source is asked only now: the file is protected
    if secret is None:
        raise UsageError(f"{what} is passphrase-protected but no passphrase was given")
    return secret


def load_identities(path: str | os.PathLike[str], *, passphrase: PassphraseSource = None) -> list[AnyIdentity]:
    """Read an identity file; a passphrase-protected one (itself an age scrypt file) is decrypted first.

    Args:
        path: the identity file (``AGE-SECRET-KEY-…`` lines, or an armored/binary age file wrapping them).
        passphrase: bytes, or a callable asked only when the file is protected.

    Raises:
        KeyFileError: unreadable or malformed file; WrongPassphraseError: wrong passphrase.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read identity file {path}: {exc.strerror}") from exc
    if is_age_file(raw):
        raw = decrypt_with_passphrase(raw, _passphrase(passphrase, f"identity file {path}"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"identity file {path} is not text") from exc
    try:
        return list(parse_identities(text))
    except KeyFileError as err:
        raise KeyFileError(f"{path}: {err}", hint=err.hint) from None


@contextlib.contextmanager
def _reader(source: PathOrFile) -> Iterator[BinaryIO]:
    if isinstance(source, (str, os.PathLike)):
        try:
            handle = open(source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from exc
        with handle:
            yield handle
    else:
        yield source  # type: ignore[misc]


@contextlib.contextmanager
def _io_errors(action: str) -> Iterator[None]:
    """An operating-system error while streaming (unreadable input, full disk) becomes a clear qsafe error."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader of standard output went away: the CLI handles that, not an error of the file
    except OSError as exc:
        raise FormatError(
            f"I/O error while {action}: {exc.strerror or exc}",
            hint="check that the input is readable and the output's disk has room; no output file was left",
        ) from exc


@contextlib.contextmanager
def _writer(
    target: PathOrFile, source: PathOrFile, *, mode: int = 0o644, also_inputs: Sequence[str | os.PathLike[str]] = ()
) -> Iterator[BinaryIO]:
    if isinstance(target, (str, os.PathLike)):
        path = Path(target)
        if path.is_dir():
            raise UsageError(f"the output {path} is a directory", hint="give a file name with -o")
        if not path.absolute().parent.is_dir():
            raise UsageError(f"the output's folder {path.absolute().parent} does not exist")
        # the output never replaces the input, nor an identity or recipients file read for this call
        inputs = tuple(Path(p) for p in also_inputs)
        inputs += (Path(source),) if isinstance(source, (str, os.PathLike)) else ()
        with atomic_output(target, inputs=inputs, mode=mode) as handle:
            yield handle
    else:
        yield target  # type: ignore[misc]


def encrypt(
    input: PathOrFile,
    output: PathOrFile,
    *,
    recipients: Sequence[str] = (),
    recipients_files: Sequence[str | os.PathLike[str]] = (),
    passphrase: bytes | None = None,
    work_factor: int = DEFAULT_WORK_FACTOR,
    armor: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Encrypt a file (path or binary file object) to age recipients or a passphrase.

    Args:
        input: plaintext path or readable binary file object.
        output: ciphertext path (written atomically, never the input) or writable binary file object.
        recipients: ``age1pq1…`` / ``age1…`` strings; PQ and classical are never mixed.
        recipients_files: files of recipients, one per line.
        passphrase: encrypt to this passphrase instead (scrypt; must be the only recipient).
        work_factor: scrypt log2(N) for passphrase encryption.
        armor: write ASCII armor.
        progress: called with the number of plaintext bytes after each chunk.

    Raises:
        UsageError: no recipient, mixed PQ/classical, passphrase with recipients, output is the input.
        KeyFileError: a malformed recipient.
    """
    targets = load_recipients(recipients, recipients_files)
    if passphrase is not None:
        targets.append(ScryptRecipient(passphrase, work_factor))
    if isinstance(input, (str, os.PathLike)) and Path(input).is_dir():
        _encrypt_directory(Path(input), output, targets, armor=armor, progress=progress,
                           also_inputs=recipients_files)
        return
    with _io_errors("encrypting"), _reader(input) as src, _writer(output, input, also_inputs=recipients_files) as dst:
        write_age(src, dst, targets, armor=armor, advance=progress)


def _encrypt_directory(root: Path, output: PathOrFile, targets: list[AnyRecipient], *, armor: bool,
                       progress: Callable[[int], None] | None,
                       also_inputs: Sequence[str | os.PathLike[str]] = ()) -> None:
    if isinstance(output, (str, os.PathLike)) and Path(output).resolve().is_relative_to(root.resolve()):
        raise UsageError(f"the output {output} lies inside the directory being encrypted")
    check_recipients(targets)
    with _writer(output, root, also_inputs=also_inputs) as dst:
        encrypt_directory(root, dst, targets, armor=armor, advance=progress)


def decrypt(
    input: PathOrFile,
    output: PathOrFile | None = None,
    *,
    extract: str | os.PathLike[str] | None = None,
    identities: Sequence[str] = (),
    identity_files: Sequence[str | os.PathLike[str]] = (),
    passphrase: PassphraseSource = None,
    identity_passphrase: PassphraseSource = None,
    max_work_factor: int = MAX_WORK_FACTOR,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Decrypt an age file (binary or armored) with identities or a passphrase.

    Args:
        input: ciphertext path or readable binary file object.
        output: plaintext path (temporary file renamed into place only after the last chunk authenticated;
            nothing is left on failure) or a writable binary file object (receives only authenticated chunks).
        extract: instead of ``output``, extract an encrypted directory (deterministic tar) into this new folder;
            entries that would land outside it, links and special files are refused.
        identities: identity strings.
        identity_files: identity files (possibly passphrase-protected age files).
        passphrase: for passphrase-encrypted (scrypt) files: bytes, str, or a callable asked only if the file is
            one.
        identity_passphrase: bytes, str or a callable (asked only then) for protected identity files.
        max_work_factor: refuse scrypt files demanding more work.
        progress: called with the number of plaintext bytes after each chunk.

    Raises:
        NoIdentityMatchedError: no identity opens the file. WrongPassphraseError: wrong passphrase.
        IntegrityError: the file was modified or truncated. FormatError: not a valid age file, or an
            unsafe archive entry. UsageError: neither or both of ``output`` and ``extract``.
    """
    if (output is None) == (extract is None):
        raise UsageError("give exactly one of an output and an extraction directory")
    keys: list[AnyIdentity] = [i for text in identities for i in parse_identities(text)]
    for path in identity_files:
        keys.extend(load_identities(path, passphrase=identity_passphrase))
    if passphrase is not None:
        keys.append(ScryptIdentity(lambda: _passphrase(passphrase, "the file"), max_work_factor))
    if not keys:
        raise UsageError("no identity or passphrase given", hint="pass -i IDENTITY_FILE, or a passphrase")
    with _io_errors("decrypting"), _reader(input) as src:
        if extract is not None:
            decrypt_directory(src, keys, Path(extract))
            return
        assert output is not None
        with _writer(output, input, mode=0o600, also_inputs=identity_files) as dst:
            decrypt_to(src, keys, dst.write, advance=progress)
