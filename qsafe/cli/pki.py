"""``qsafe pki``: a small post-quantum CA for release signing (ML-DSA-87 root -> ML-DSA-65 signing certificates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import echo, emit_json, load_private_key, read_passphrase
from qsafe.cli._options import PASSPHRASE_ENV, json_option, passphrase_file_option, passphrase_options
from qsafe.errors import UsageError

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group(short_help="A small post-quantum CA: root, intermediate and code-signing certificates.")
def pki() -> None:
    """A small post-quantum PKI for release signing (ML-DSA certificates, RFC 9881 encodings).

    init-ca makes a root CA (key + self-signed certificate); issue certifies a signing key made with
    `qsafe keygen` (or an intermediate CA). Sign with `qsafe sign --key K --certificate CERT.pem`, verify with
    `qsafe verify --certificate-chain CA.pem`.
    """


def _report(cert: Any, path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    from qsafe.certificates import certificate_info

    info = certificate_info(cert)
    return {"certificate": str(path), "subject": info.subject, "issuer": info.issuer, "serial": info.serial,
            "not_before": info.not_before, "not_after": info.not_after, "sans": list(info.sans),
            "sha256": info.sha256, **extra}


@pki.command("init-ca")
@click.option("--out", "prefix", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write PREFIX.pem (the CA certificate), PREFIX.key and PREFIX.pub.")
@click.option("--subject", required=True, help="RFC 4514 name, e.g. 'CN=Example Release CA,O=Example'.")
@click.option("--alg", "algorithm", type=click.Choice(["ml-dsa-87", "ml-dsa-65", "ml-dsa-44", "ecdsa-p256"]),
              default="ml-dsa-87", show_default=True, help="The CA key's algorithm.")
@click.option("--days", type=click.IntRange(1, 36500), default=3650, show_default=True)
@click.option("--path-length", type=click.IntRange(min=0), help="How many intermediate CAs may follow.")
@passphrase_options
@json_option("Print a JSON report.")
def init_ca(prefix: Path, subject: str, algorithm: str, days: int, path_length: int | None,
            passphrase_file: Path | None, no_passphrase: bool, as_json: bool) -> None:
    """Create a root CA: a new key (passphrase-protected by default) and its self-signed certificate."""
    from qsafe import keys
    from qsafe import pki as lib
    from qsafe._crypto import keyfile

    keyfile.check_free(prefix, overwrite=False)
    cert_path = prefix.with_name(prefix.name + ".pem")
    if cert_path.exists():
        raise UsageError(f"{cert_path} exists; refusing to overwrite it")
    lib.parse_name(subject)  # a bad subject is refused before any passphrase prompt
    if no_passphrase and passphrase_file is not None:
        raise UsageError("--no-passphrase and --passphrase-file contradict each other")
    passphrase = None if no_passphrase else read_passphrase(passphrase_file, confirm=True,
                                                            prompt="Passphrase for the CA key")
    key = keys.generate(algorithm)
    cert = lib.create_ca(key, subject, days=days, path_length=path_length)
    keys.write_key_pair(key, prefix, passphrase)
    lib.write_certificate(cert_path, cert)
    if as_json:
        emit_json(_report(cert, cert_path, {"algorithm": algorithm, "key_id": key.public_key().key_id}))
    else:
        echo(str(cert_path))


@pki.command("issue")
@click.option("--ca", "ca_cert", required=True, type=_EXISTING, help="The issuing CA's certificate (PEM).")
@click.option("--ca-key", required=True, type=_EXISTING, help="The issuing CA's private key.")
@click.option("--public-key", required=True, type=_EXISTING,
              help="The public key to certify (PREFIX.pub from `qsafe keygen`).")
@click.option("--subject", required=True, help="RFC 4514 name, e.g. 'CN=release signer,O=Example'.")
@click.option("--san", "sans", multiple=True, help="subjectAltName: email:ADDR, uri:URI or dns:NAME (repeatable).")
@click.option("--days", type=click.IntRange(1, 36500), default=365, show_default=True)
@click.option("--intermediate", is_flag=True, help="Issue an intermediate CA certificate instead of a signing one.")
@click.option("--path-length", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --intermediate: how many CAs may follow it.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the certificate (PEM); never replaces a file.")
@passphrase_file_option(f"Passphrase of the CA key (first line). Also: ${PASSPHRASE_ENV}, or a prompt.")
@json_option("Print a JSON report.")
def issue(ca_cert: Path, ca_key: Path, public_key: Path, subject: str, sans: tuple[str, ...], days: int,
          intermediate: bool, path_length: int, out: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Certify a public key: a code-signing certificate (or, with --intermediate, a CA certificate)."""
    from qsafe import keys
    from qsafe import pki as lib
    from qsafe.certificates import load_certificates

    if out.exists():
        raise UsageError(f"{out} exists; refusing to overwrite it")
    if intermediate and sans:
        raise UsageError("--san goes on signing certificates, not on --intermediate CA certificates")
    issuers = load_certificates([ca_cert])
    if len(issuers) != 1:
        raise UsageError(f"{ca_cert} holds {len(issuers)} certificates; --ca takes the issuing CA's alone")
    public = keys.load_public_key(public_key)
    ca = load_private_key(ca_key, passphrase_file, prompt="CA key passphrase")
    if intermediate:
        cert = lib.issue_ca_certificate(issuers[0], ca, public, subject, days=days, path_length=path_length)
    else:
        cert = lib.issue_signing_certificate(issuers[0], ca, public, subject, days=days, sans=sans)
    lib.write_certificate(out, cert)
    if as_json:
        emit_json(_report(cert, out, {"algorithm": public.algorithm, "key_id": public.key_id,
                                      "ca": intermediate}))
    else:
        echo(str(out))
