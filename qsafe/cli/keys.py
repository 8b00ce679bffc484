"""``qsafe keygen``: signing key pairs and encryption identities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import RegistryChoice, emit_json, read_passphrase
from qsafe.cli._options import json_option, passphrase_options
from qsafe.errors import MissingDependencyError, UsageError

# Encryption identities are made by qsafe.encryption (age recipients); signing keys by qsafe.keys.
ENCRYPTION_ALGORITHMS = ("ml-kem-768-x25519", "x25519")


def _signing_choices() -> list[str]:
    """Installed signature schemes (built-ins and plugins, from the qsafe.signers registry), then encryption."""
    from qsafe.keys import signature_algorithms

    return [*signature_algorithms(), *ENCRYPTION_ALGORITHMS]


def _missing_plugin(name: str) -> Exception | None:
    from qsafe.signers import missing_plugin_error

    return missing_plugin_error(name=name)


def _passphrase(passphrase_file: Path | None, no_passphrase: bool) -> bytes | None:
    if no_passphrase:
        if passphrase_file is not None:
            raise UsageError("--no-passphrase and --passphrase-file contradict each other")
        return None
    return read_passphrase(passphrase_file, confirm=True, prompt="Passphrase for the new key")


def _signing_pair(algorithm: str, prefix: Path, passphrase: bytes | None, force: bool) -> dict[str, Any]:
    from qsafe import keys

    key = keys.generate(algorithm)
    pub_path, key_path = keys.write_key_pair(key, prefix, passphrase, overwrite=force)
    public = key.public_key()
    return {"kind": "signing", "algorithm": algorithm, "key_id": public.key_id, "post_quantum": public.post_quantum,
            "public_key": str(pub_path), "private_key": str(key_path), "protected": passphrase is not None}


def _encryption_pair(algorithm: str, prefix: Path, passphrase: bytes | None, force: bool) -> dict[str, Any]:
    from qsafe._crypto import keyfile

    try:
        from qsafe.encryption import generate_identity
    except ImportError as exc:
        raise MissingDependencyError("encryption identities need qsafe.encryption, which is not available") from exc
    identity, recipient = generate_identity(algorithm)
    secret = identity.encode("ascii") + b"\n"
    if passphrase is not None:
        secret = keyfile.protect(secret, passphrase)
    pub_path, key_path = keyfile.write_pair(prefix, recipient.encode("ascii") + b"\n", secret, overwrite=force)
    return {"kind": "encryption", "algorithm": algorithm, "recipient": recipient,
            "post_quantum": algorithm != "x25519", "public_key": str(pub_path), "private_key": str(key_path),
            "protected": passphrase is not None}


@click.command(short_help="Generate a signing key pair or an encryption identity.")
@click.option("--alg", "algorithm", type=RegistryChoice(_signing_choices, _missing_plugin), default="ml-dsa-65",
              show_default=True,
              help="Signing algorithm (every installed one: plugins add theirs), or ml-kem-768-x25519 / x25519 "
                   "for an encryption identity.")
@click.option("--out", "prefix", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write PREFIX.pub and PREFIX.key.")
@passphrase_options
@click.option("--force", is_flag=True, help="Replace existing PREFIX.pub / PREFIX.key.")
@json_option("Print a JSON report instead of the key id.")
def keygen(algorithm: str, prefix: Path, passphrase_file: Path | None, no_passphrase: bool, force: bool,
           as_json: bool) -> None:
    """Generate a key pair: PREFIX.pub (public) and PREFIX.key (private, passphrase-protected by default).

    Prints the key id (signing keys) or the recipient (encryption identities). The passphrase comes from
    --passphrase-file, $QSAFE_PASSPHRASE or a prompt, never from the command line.
    """
    from qsafe._crypto import keyfile

    keyfile.check_free(prefix, overwrite=force)  # refuse before asking for a passphrase
    passphrase = _passphrase(passphrase_file, no_passphrase)
    make = _encryption_pair if algorithm in ENCRYPTION_ALGORITHMS else _signing_pair
    report = make(algorithm, prefix, passphrase, force)
    if as_json:
        emit_json(report)
    else:
        click.echo(report.get("key_id") or report["recipient"])
