"""One exception tree for qsafe.

Every class carries an ``exit_code`` (the CLI exits with it) and a ``hint`` (what the user can do next).
Codes are stable and documented in README.md (a test checks that the two agree):

- 0 ok, 2 usage;
- 3-6 *could not check* (malformed input, unusable key, missing plugin or dependency, unavailable source);
- 10-19 *checked and rejected* (signature, policy, model changed, no identity, integrity, attestation, HE,
  audit log).

Library code raises these; only :mod:`qsafe.cli` turns them into ``qsafe: error:`` lines and exit codes.
"""

from __future__ import annotations

__all__ = [
    "AttestationError",
    "AuditLogError",
    "CouldNotCheckError",
    "DataAuditError",
    "DatasetMismatchError",
    "FormatError",
    "HEMismatchError",
    "IntegrityError",
    "InvalidInputError",
    "KeyFileError",
    "MissingDependencyError",
    "ModelMismatchError",
    "NoIdentityMatchedError",
    "OutputExistsError",
    "PolicyError",
    "QsafeError",
    "RejectedError",
    "SignatureError",
    "UnavailableError",
    "UsageError",
    "WrongPassphraseError",
    "all_error_classes",
]


class QsafeError(Exception):
    """Base of every qsafe error. Not raised itself.

    Messages name untrusted things (files of a downloaded model folder, tensor names, client ids, paths given
    on the command line) and are safe to print by construction: ``message`` (and ``str(err)``) has every control,
    separator and bidi character of each line escaped (:func:`qsafe._text.printable`), so a newline or ESC
    sequence inside a name can neither start a line of its own nor drive the terminal. A message given as a
    string is ONE line; a message of several lines is given as a list of lines (the library decides where lines
    break, never the data). ``exact_message`` keeps the text as built, names exact, for ``--json`` output.
    """

    exit_code: int = 1
    hint: str = "this is a bug in qsafe; please report it"

    def __init__(self, message: str | list[str] | tuple[str, ...], *, hint: str | None = None) -> None:
        from qsafe._text import printable

        lines = list(message) if isinstance(message, (list, tuple)) else [str(message)]
        self.exact_message = "\n".join(lines)
        self.message = "\n".join(printable(line) for line in lines)
        super().__init__(self.message)
        if hint is not None:
            self.hint = printable(hint)

    def __str__(self) -> str:
        return self.message


# --- 2: usage -------------------------------------------------------------------------------------------------
class UsageError(QsafeError):
    """The call itself is wrong: bad option combination, missing argument."""

    exit_code = 2
    hint = "run the command with --help"


class OutputExistsError(UsageError):
    """The output path exists, or is one of the inputs; qsafe never overwrites an input."""

    hint = "choose another output path, or remove the existing file first"


class InvalidInputError(UsageError):
    """The input is well-formed but refused before any work (NaN/Inf, out of bounds, empty)."""

    hint = "fix the input values and try again"


# --- 3-6: could not check -------------------------------------------------------------------------------------
class CouldNotCheckError(QsafeError):
    """Nothing was verified: the check could not be carried out."""

    exit_code = 3
    hint = "nothing was verified"


class FormatError(CouldNotCheckError):
    """Malformed bundle, header, key file, manifest, evidence or container."""

    exit_code = 3
    hint = "the file is not a valid qsafe/age/model-signing file; check that you passed the right file"


class KeyFileError(CouldNotCheckError):
    """A key could not be read or used (unknown algorithm, wrong type, unreadable)."""

    exit_code = 4
    hint = "check the key path and that it is the right kind of key (public vs private, signing vs encryption)"


class WrongPassphraseError(KeyFileError):
    """The passphrase does not decrypt the protected key or context."""

    hint = "check the passphrase (--passphrase-file, QSAFE_PASSPHRASE or the prompt)"


class MissingDependencyError(CouldNotCheckError):
    """An optional dependency or plugin is not installed."""

    exit_code = 5
    hint = "install the extra named in the message, e.g. pip install 'qsafe[he]'"


class UnavailableError(CouldNotCheckError):
    """An evidence source or device is not available on this machine (no GPU, no TEE, no TPM)."""

    exit_code = 6
    hint = "run this on the machine that has the device"


# --- 10-19: checked and rejected ------------------------------------------------------------------------------
class RejectedError(QsafeError):
    """The check ran and the input was rejected."""

    exit_code = 10
    hint = "do not use this artifact"


class SignatureError(RejectedError):
    """A signature does not verify with any of the given keys (bad signature or wrong key)."""

    exit_code = 10
    hint = "the signature is invalid or made with another key: do not trust this artifact"


class PolicyError(RejectedError):
    """The signature verifies but the verification policy refuses it (e.g. classical-only)."""

    exit_code = 11
    hint = "the policy refuses this signature; --allow-classical accepts classical-only bundles"


class ModelMismatchError(RejectedError):
    """The model on disk differs from the signed manifest (changed, missing or extra files or tensors)."""

    exit_code = 12
    hint = "the model was modified after signing: do not deploy it"

    def __init__(
        self,
        message: str | list[str] | tuple[str, ...],
        *,
        changed: list[str] | None = None,
        missing: list[str] | None = None,
        extra: list[str] | None = None,
        changed_tensors: dict[str, list[str]] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.changed = changed or []
        self.missing = missing or []
        self.extra = extra or []
        self.changed_tensors = changed_tensors or {}


class DataAuditError(PolicyError):
    """Training data has no passing signed poisoning audit (failed, missing, unsigned or about other data)."""

    hint = ("clean the data (the audit names the suspect rows) and audit it again; training anyway needs the loud "
            "override --unsafe-train-on-failed-audit")


class DatasetMismatchError(ModelMismatchError):
    """A dataset differs from its signed manifest; the changed, inserted or deleted rows are named."""

    hint = "the data was modified after its manifest was signed: do not train on it"

    def __init__(self, message: str | list[str] | tuple[str, ...], *, changed_rows: list[int] | None = None,
                 inserted_rows: list[int] | None = None, deleted_rows: list[int] | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.changed_rows = changed_rows or []
        self.inserted_rows = inserted_rows or []
        self.deleted_rows = deleted_rows or []


class NoIdentityMatchedError(RejectedError):
    """No identity given can decrypt the file."""

    exit_code = 13
    hint = "pass the identity (-i) that matches one of the file's recipients"


class IntegrityError(RejectedError):
    """Encrypted data failed authentication: the header MAC or a payload chunk was modified or truncated."""

    exit_code = 14
    hint = "the file was modified or truncated: nothing was written"


class AttestationError(RejectedError):
    """The environment's evidence does not satisfy the policy, or does not verify."""

    exit_code = 15
    hint = "the evidence does not satisfy the policy: do not trust what it describes"

    def __init__(self, message: str | list[str] | tuple[str, ...], *, failed_claims: list[str] | None = None,
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.failed_claims = failed_claims or []


class HEMismatchError(RejectedError):
    """A federated update was refused: wrong context, round, replay, unknown client or bad signature."""

    exit_code = 16
    hint = "the update does not belong to this round/context or is not from an allowed client"


class AuditLogError(RejectedError):
    """The audit log's hash chain or a signed round head does not verify."""

    exit_code = 17
    hint = "the audit log was modified; the first broken record is named in the message"


def all_error_classes() -> list[type[QsafeError]]:
    """Every concrete error class, for documentation and the README agreement test.

    Returns:
        The classes of this module that subclass :class:`QsafeError`, in definition order.
    """
    return [obj for name, obj in globals().items() if name in __all__ and isinstance(obj, type)
            and issubclass(obj, QsafeError)]
