"""``qsafe sign``, ``qsafe verify`` and ``qsafe inspect``: thin wrappers over qsafe.signing / qsafe.verifying.

This module must stay light: ``qsafe verify`` never imports torch or tenseal, and imports the sigstore library
only for a keyless bundle or option (tests check sys.modules).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import echo, emit_json, load_private_key, progress
from qsafe.cli._options import PASSPHRASE_ENV, json_option, passphrase_file_option, policy_option
from qsafe.errors import UsageError


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A library progress callback ``(advance, total)`` drawing a bar on a terminal, opened on first use."""
    stack = contextlib.ExitStack()
    state: dict[str, Callable[[int], None]] = {}

    def callback(advance: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = stack.enter_context(progress(total, label))
        state["bar"](advance)

    with stack:
        yield callback


def _trust_root(trust_config: Path | None) -> Any:
    if trust_config is None:
        return None
    from qsafe.keyless import TrustRoot

    return TrustRoot.from_file(trust_config)


def _sign_certificates(certificate: Path | None, chain: tuple[Path, ...]) -> list[Any]:
    if certificate is None:
        if chain:
            raise UsageError("--certificate-chain needs --certificate (the signing certificate) when signing")
        return []
    from qsafe.certificates import load_certificates

    leaf = load_certificates([certificate])
    if len(leaf) != 1:
        raise UsageError(f"{certificate} holds {len(leaf)} certificates; --certificate takes the signing "
                         "certificate alone (issuers go in --certificate-chain)")
    return [*leaf, *load_certificates(list(chain))]


_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "key_path", type=_EXISTING_FILE, help="Private key file (PREFIX.key).")
@click.option("--certificate", type=_EXISTING_FILE,
              help="The key's X.509 signing certificate (PEM): write a certificate-chain bundle.")
@click.option("--certificate-chain", "chain", multiple=True, type=_EXISTING_FILE,
              help="Issuer certificates to include after --certificate (PEM, repeatable).")
@click.option("--sigstore", "keyless", is_flag=True,
              help="Sign keyless with Sigstore (OIDC identity, Fulcio, Rekor); with --key: a hybrid release.")
@click.option("--identity-token-file", type=_EXISTING_FILE,
              help="OIDC token for --sigstore. Also: $SIGSTORE_IDENTITY_TOKEN, or ambient CI credentials.")
@click.option("--trust-config", type=_EXISTING_FILE,
              help="Sigstore ClientTrustConfig of a private instance (default: Sigstore production).")
@click.option("--signature", type=click.Path(path_type=Path),
              help="Where to write the bundle [default: model.sig in the model dir / beside the file].")
@click.option("--pq-signature", type=click.Path(path_type=Path),
              help="Hybrid release: where the --key bundle goes [default: model.pq.sig beside model.sig].")
@click.option("--hash", "algorithm", type=click.Choice(["sha256", "blake3", "blake2b"]), default="sha256",
              show_default=True, help="Digest algorithm for files, shards and tensors.")
@click.option("--method", type=click.Choice(["files", "shards"]), default="files", show_default=True,
              help="One digest per file, or per shard of --shard-size bytes (as model-signing).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1_000_000_000, show_default=True)
@click.option("--ignore-path", "ignore_paths", multiple=True, help="Relative path to leave out (repeatable).")
@click.option("--no-ignore-git-paths", is_flag=True, help="Also sign .git, .gitattributes, .github, .gitignore.")
@click.option("--allow-symlinks", is_flag=True, help="Follow symlinks that stay inside the model root.")
@click.option("--no-tensor-digests", is_flag=True, help="Do not record per-tensor digests of .safetensors files.")
@passphrase_file_option(f"Passphrase of a protected key (first line). Also: ${PASSPHRASE_ENV}, or a prompt.")
@click.option("--force", is_flag=True,
              help="Replace an existing signature beside a single-file model even if it may be its folder's.")
@json_option("Print a JSON summary.")
def sign(model: Path, key_path: Path | None, certificate: Path | None, chain: tuple[Path, ...], keyless: bool,
         identity_token_file: Path | None, trust_config: Path | None, signature: Path | None,
         pq_signature: Path | None, algorithm: str, method: str, shard_size: int, ignore_paths: tuple[str, ...],
         no_ignore_git_paths: bool, allow_symlinks: bool, no_tensor_digests: bool, passphrase_file: Path | None,
         force: bool, as_json: bool) -> None:
    """Sign MODEL (a directory or a file): with a post-quantum key (--key, optionally with an X.509
    --certificate), keyless with Sigstore (--sigstore), or both at once (a hybrid release)."""
    from qsafe.hashing import HashingConfig
    from qsafe.signing import default_signature_path, pq_signature_path
    from qsafe.signing import sign as sign_model

    if key_path is None and not keyless:
        raise UsageError("nothing to sign with", hint="pass --key KEY, --sigstore, or both (a hybrid release)")
    if key_path is None and (certificate or chain):
        raise UsageError("--certificate needs --key (the certificate's private key)")
    if not keyless and (identity_token_file or trust_config or pq_signature):
        raise UsageError("--identity-token-file, --trust-config and --pq-signature go with --sigstore")
    certificates = _sign_certificates(certificate, chain)
    config = HashingConfig(algorithm=algorithm, method=method, shard_size=shard_size,
                           ignore_paths=tuple(p.rstrip("/") for p in ignore_paths),
                           ignore_git_paths=not no_ignore_git_paths, allow_symlinks=allow_symlinks,
                           tensor_digests=not no_tensor_digests)
    token = root = None
    if keyless:
        from qsafe.keyless import find_identity_token

        root = _trust_root(trust_config)
        token = find_identity_token(identity_token_file)
    key = load_private_key(key_path, passphrase_file) if key_path is not None else None
    target = signature or default_signature_path(model)
    written = [target]
    if key is not None and keyless:
        written.append(pq_signature or pq_signature_path(model))
    with _progress_bar("hashing") as bar:
        manifest = sign_model(model, key, signature=signature, config=config, progress=bar,
                              certificates=certificates, sigstore_token=token, trust_root=root,
                              pq_signature=pq_signature, force=force)
    if as_json:
        report: dict[str, Any] = {"signature": str(target), "signatures": [str(p) for p in written],
                                  "root_digest": manifest.root_digest, "resources": len(manifest.resources),
                                  "tensor_files": sorted(manifest.tensors), "keyless": keyless}
        if key is not None:
            report.update(algorithm=key.algorithm, key_id=key.public_key().key_id,
                          certificate=bool(certificates))
        emit_json(report)
    else:
        for p in written:
            echo(str(p))  # beside a downloaded folder: its name is not ours


def _signer_report(s: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": s.kind, "algorithm": s.algorithm, "post_quantum": s.post_quantum,
                           "key_id": s.key_id, "signature": s.source}
    if s.certificate is not None:
        out["certificate"] = dict(vars(s.certificate))
    if s.identities:
        out["identities"] = [{"identity": i, "issuer": u} for i, u in s.identities]
    if s.log_entries:
        out["log_entries"] = [dict(vars(e)) for e in s.log_entries]
    return out


def _report(verification: Any) -> dict[str, Any]:
    m = verification.manifest
    return {"verified": True, "key_id": verification.key_id, "algorithm": verification.algorithm,
            "post_quantum": verification.post_quantum, "model_name": m.model_name, "root_digest": m.root_digest,
            "files": len(m.files()), "tensors": sum(len(t.tensors) for t in m.tensors.values()),
            "signers": [_signer_report(s) for s in verification.signers],
            "model_evidence": [e.summary() for e in verification.model_evidence]}


def _parse_requirement(text: str) -> Any:
    """``pq`` or ``sigstore:IDENTITY@ISSUER`` (the issuer is the URL after the last ``@http``)."""
    from qsafe.policy import Identity, PostQuantum

    if text == "pq":
        return PostQuantum()
    if text.startswith("sigstore:"):
        spec = text[len("sigstore:"):]
        cut = max(spec.rfind("@https://"), spec.rfind("@http://"))
        if cut > 0:
            return Identity(spec[:cut], spec[cut + 1:])
    raise UsageError(f"unknown requirement {text!r}",
                     hint="use --require pq or --require sigstore:IDENTITY@https://ISSUER")


def _policy(allow_classical: bool, identity: str | None, issuer: str | None, requires: tuple[str, ...]) -> Any:
    from qsafe.policy import AllOf, Identity, VerificationPolicy

    if (identity is None) != (issuer is None):
        raise UsageError("--identity and --issuer go together (a keyless identity is checked with its issuer)")
    parts: list[Any] = [VerificationPolicy(allow_classical=allow_classical)]
    if identity is not None and issuer is not None:
        parts.append(Identity(identity, issuer))
    parts += [_parse_requirement(r) for r in requires]
    return AllOf(*parts)


def _kind_trusted(kind: str, keys: bool, roots: bool, identities: bool) -> bool:
    return {"key": keys, "certificate": roots, "sigstore": identities}.get(kind, False)


def _discover(model: Path, signatures: tuple[Path, ...], keys: bool, roots: bool, identities: bool) -> list[Path]:
    """The bundles to verify: those given; else model.sig and, if present, model.pq.sig (a hybrid release),
    keeping, when both exist, the ones this call has trust input for."""
    from qsafe.bundle import read_bundle
    from qsafe.signing import default_signature_path, pq_signature_path

    if signatures:
        return list(signatures)
    found = [p for p in (default_signature_path(model), pq_signature_path(model)) if p.is_file()]
    if len(found) <= 1:
        return found or [default_signature_path(model)]
    usable = [p for p in found if _kind_trusted(read_bundle(p).kind, keys, roots, identities)]
    return usable or found


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--signature", "signatures", multiple=True, type=click.Path(path_type=Path),
              help="A bundle (repeatable) [default: model.sig, and model.pq.sig when present].")
@click.option("--key", "key_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted public key file or directory of *.pub (repeatable).")
@click.option("--certificate-chain", "roots", multiple=True, type=_EXISTING_FILE,
              help="Trusted CA certificate(s), PEM (repeatable): for X.509 certificate-chain bundles.")
@click.option("--identity", help="Keyless: the signer's identity (certificate SAN: e-mail or workflow URI).")
@click.option("--issuer", help="Keyless: the OIDC issuer of --identity, e.g. https://github.com/login/oauth.")
@click.option("--trust-config", type=_EXISTING_FILE,
              help="Sigstore ClientTrustConfig or TrustedRoot of a private instance (default: production, pinned).")
@click.option("--require", "requires", multiple=True,
              help="pq, or sigstore:IDENTITY@ISSUER (repeatable): what a release must carry (hybrid).")
@click.option("--allow-classical", is_flag=True,
              help="Accept classical-only signatures (ECDSA: model-signing, Sigstore keyless).")
@click.option("--ignore-path", "ignore_paths", multiple=True,
              help="Also leave this relative path out (as model_signing --ignore-paths; repeatable).")
@click.option("--allow-symlinks", is_flag=True, help="Follow in-root symlinks (only if the signer allowed them).")
@click.option("--evaluation", "evaluations", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Signed model evidence about MODEL (e.g. from `qsafe robust report --sign`; repeatable).")
@click.option("--evaluator-key", "evaluator_keys", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted public key of the evaluator(s) that signed --evaluation (file or directory; repeatable).")
@policy_option("Policy whose model.* rules the evidence must satisfy (deny: exit 15).")
@click.option("--at", "at", help="Verification time (ISO-8601; default now): certificate chains must be valid "
              "then, and the policy's rules are evaluated then.")
@json_option("Print a JSON report (on failure: the error object, with \"verified\": false).", verified=False)
def verify(model: Path, signatures: tuple[Path, ...], key_paths: tuple[Path, ...], roots: tuple[Path, ...],
           identity: str | None, issuer: str | None, trust_config: Path | None, requires: tuple[str, ...],
           allow_classical: bool, ignore_paths: tuple[str, ...], allow_symlinks: bool, evaluations: tuple[Path, ...],
           evaluator_keys: tuple[Path, ...], policy: Path | None, at: str | None, as_json: bool) -> None:
    """Verify MODEL against its signature(s) (and its signed evidence against --policy). Silent on success;
    names every change on failure.

    Trust comes from --key (key bundles), --certificate-chain (X.509 bundles) or --identity/--issuer
    (Sigstore keyless bundles); a post-quantum signature is required unless --allow-classical.
    """
    from qsafe.verifying import verify as verify_model

    if evaluations and not evaluator_keys:
        raise UsageError("--evaluation needs --evaluator-key (the evaluator's public key)")
    if evaluator_keys and not evaluations and policy is None:
        raise UsageError("--evaluator-key needs --evaluation FILE")
    when = None
    if at is not None:
        from qsafe.cli.attestation import parse_time_option

        when = parse_time_option(at)
    sig_policy = _policy(allow_classical, identity, issuer, requires)
    if not (key_paths or roots or sig_policy.keyless_identities()):
        raise UsageError("no trust input given",
                         hint="pass --key PUB, --certificate-chain CA.pem, or --identity ID --issuer URL")
    bundles = _discover(model, signatures, bool(key_paths), bool(roots), bool(sig_policy.keyless_identities()))
    with _progress_bar("verifying") as bar:
        result = verify_model(model, bundles, list(key_paths) if key_paths else None, policy=sig_policy,
                              certificate_roots=list(roots), trust_root=_trust_root(trust_config),
                              at=when, allow_symlinks=allow_symlinks,
                              ignore_paths=tuple(p.rstrip("/") for p in ignore_paths), progress=bar,
                              evaluations=list(evaluations), evaluator_keys=list(evaluator_keys) or None,
                              evidence_policy=policy)
    if as_json:
        emit_json(_report(result))


def _inspect_data(path: Path) -> dict[str, Any]:
    from qsafe.bundle import manifest_from_statement, read_bundle

    bundle = read_bundle(path)
    manifest = manifest_from_statement(bundle.statement())
    signer: dict[str, Any] = {"kind": bundle.kind, "key_hint": bundle.key_hint, "key_id": bundle.keyid,
                              "algorithm": _algorithm_name(bundle.key_details), "key_details": bundle.key_details}
    if bundle.certificates:
        from qsafe.certificates import certificate_info, parse_der_certificates

        certs = parse_der_certificates(bundle.certificates)
        signer["certificates"] = [dict(vars(certificate_info(c))) for c in certs]
        signer["algorithm"], signer["key_details"] = _certificate_algorithm(certs[0])
    if bundle.kind == "sigstore":
        from qsafe.keyless import bundle_log_entries

        signer["log_entries"] = [dict(vars(e)) for e in bundle_log_entries(bundle.document)]
    return {
        "verified": False,
        "signer": signer,
        "model_name": manifest.model_name,
        "root_digest": {"sha256": manifest.root_digest},
        "serialization": manifest.serialization.to_dict(),
        "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in manifest.resources],
        "tensors": {f: {"header": d.header, "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
                                                          "digest": t.digest} for t in d.tensors]}
                    for f, d in manifest.tensors.items()},
    }


def _algorithm_name(key_details: str | None) -> str | None:
    """qsafe's name of a bundle's keyDetails (``ML_DSA_65`` -> ``ml-dsa-65``, as verify prints it); the keyDetails
    itself when no installed scheme claims it, None when the bundle names none."""
    if key_details is None:
        return None
    from qsafe.signers import scheme_for_key_details

    scheme = scheme_for_key_details(key_details)
    return scheme.name if scheme is not None else key_details


def _certificate_algorithm(cert: Any) -> tuple[str | None, str | None]:
    """(qsafe's algorithm name, Sigstore keyDetails) of a leaf certificate's key; (None, None) if unknown."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from qsafe.errors import KeyFileError
    from qsafe.keys import public_key_from_der

    try:
        key = public_key_from_der(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    except (KeyFileError, ValueError):
        return None, None
    return key.algorithm, key.key_details


def _echo_certificates(signer: dict[str, Any]) -> None:
    for i, c in enumerate(signer.get("certificates", [])):
        role = "leaf" if i == 0 else "issuer"
        echo(f"{role + ':':9}  subject {c['subject'] or '(empty)'}; issued by {c['issuer']}")
        if c["sans"]:
            echo(f"           SANs {', '.join(c['sans'])}")
        if c["oidc_issuer"]:
            echo(f"           OIDC issuer {c['oidc_issuer']}")
        echo(f"           valid {c['not_before']} to {c['not_after']}; sha256 {c['sha256']}")
    for e in signer.get("log_entries", []):
        when = dt.datetime.fromtimestamp(e["integrated_time"], dt.timezone.utc).isoformat() \
            if e["integrated_time"] else "- (Rekor v2: time from a signed timestamp)"
        echo(f"log entry: index {e['log_index']} ({e['kind']}), integrated {when}, log {e['log_id'][:16]}…")


@click.command("inspect")
@click.argument("signature", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option("Print the bundle's contents as JSON.")
def inspect_cmd(signature: Path, as_json: bool) -> None:
    """Show a bundle's signer, certificates, log entries and digests (NOT a verification: use `qsafe verify`)."""
    data = _inspect_data(signature)
    if as_json:
        emit_json(data)
        return
    s = data["signer"]
    echo("unverified contents of " + str(signature) + " (run `qsafe verify` to check them)")
    if s["kind"] == "key":
        echo(f"signer:    key hint {s['key_hint'] or '-'}; key id {s['key_id'] or '-'}; "
                   f"algorithm {s['algorithm'] or 'unknown (model-signing key bundle: ECDSA)'}")
    else:
        echo(f"signer:    {'Sigstore keyless' if s['kind'] == 'sigstore' else 'X.509 certificate chain'}; "
                   f"algorithm {s['algorithm'] or 'unknown'}")
        _echo_certificates(s)
    echo(f"model:     {data['model_name']}  root sha256:{data['root_digest']['sha256']}")
    ser = data["serialization"]
    echo(f"hashing:   {ser['method']} {ser['hash_type']}" + (f" shard {ser['shard_size']}" if "shard_size" in ser
                                                                   else ""))
    for r in data["resources"]:
        echo(f"  {r['algorithm']}:{r['digest']}  {r['name']}")
    for f, t in data["tensors"].items():
        echo(f"tensors of {f}: header {t['header']}")
        for e in t["tensors"]:
            echo(f"  {e['digest']}  {e['name']} {e['dtype']}{e['shape']}")
