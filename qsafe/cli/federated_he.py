"""``qsafe fl init|encrypt|aggregate|decrypt``: thin commands over :mod:`qsafe.federated`."""

from __future__ import annotations

from pathlib import Path

import click

from qsafe._io import atomic_output
from qsafe.cli._common import emit_json, load_private_key, progress, read_input, read_passphrase
from qsafe.cli._options import add_error_fields, json_option, passphrase_file_option, passphrase_options
from qsafe.errors import FormatError, HEMismatchError, KeyFileError, UsageError

_PATH = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
_json_option = json_option("Print a JSON report on stdout.")
_key_passphrase = passphrase_file_option("Passphrase for a protected key/context (first line). Also $QSAFE_PASSPHRASE.")


def _is_protected(path: Path, what: str) -> bool:
    from qsafe.federated import is_protected

    return is_protected(read_input(path, what, limit=64))


def _updates_in(directory: Path) -> list[Path]:
    """The update files of a directory (other .qfl files, such as aggregates, are skipped)."""
    from qsafe._files import open_regular
    from qsafe._labels import FL_UPDATE_MAGIC

    found = []
    for path in sorted(directory.glob("*.qfl")):
        try:
            with open_regular(path, "update") as handle:  # never blocks on a FIFO named *.qfl
                if handle.read(len(FL_UPDATE_MAGIC)) == FL_UPDATE_MAGIC:
                    found.append(path)
        except FormatError:
            found.append(path)  # the update check names it (unreadable, not a regular file)
    return found


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for secret.ctx and public.ctx (created if missing).")
@click.option("--scheme", type=click.Choice(["bfv-packed", "ckks"]), default="bfv-packed", show_default=True)
@click.option("--clip", type=float, default=1.0, show_default=True, help="Clients must send values with |x| <= CLIP.")
@click.option("--max-clients", type=int, default=1024, show_default=True,
              help="Most updates one aggregate may sum; bfv-packed sizes its moduli to it (10: 8 bytes per value "
                   "uploaded, 1024: 10).")
@click.option("--norm-keys", is_flag=True, help="ckks only: publish relin+Galois keys for encrypted norms (35 MB).")
@passphrase_options
@_json_option
def init(out_dir: Path, scheme: str, clip: float, max_clients: int, norm_keys: bool, passphrase_file: Path | None,
         no_passphrase: bool, as_json: bool) -> None:
    """Key authority: write DIR/secret.ctx (passphrase-protected) and DIR/public.ctx; print the fingerprint."""
    from qsafe._text import printable
    from qsafe.federated import HEContext

    secret_path, public_path = out_dir / "secret.ctx", out_dir / "public.ctx"
    for path in (secret_path, public_path):
        if path.exists():
            from qsafe.errors import OutputExistsError

            raise OutputExistsError(f"{path} exists; qsafe never replaces an HE context")
    if no_passphrase and passphrase_file is not None:
        raise UsageError("--no-passphrase and --passphrase-file contradict each other")
    passphrase = None if no_passphrase else read_passphrase(passphrase_file, confirm=True)
    ctx = HEContext.generate(scheme, clip=clip, max_clients=max_clients, norm_keys=norm_keys)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.save_secret(secret_path, passphrase)
    ctx.save_public(public_path)
    if as_json:
        emit_json({"fingerprint": ctx.fingerprint, "public": str(public_path), "secret": str(secret_path),
                   "protected": passphrase is not None, "scheme": ctx.params.to_json()})
    else:
        click.echo(f"{ctx.fingerprint}  {printable(public_path)}")


@click.command()
@click.argument("update", type=_EXISTING)
@click.option("--context", "context_path", required=True, type=_EXISTING, help="The public HE context.")
@click.option("--key", "key_path", required=True, type=_EXISTING, help="The client's signing key (CLIENT.key).")
@click.option("--round", "round_", required=True, type=click.IntRange(min=0), help="The aggregation round.")
@click.option("-o", "--output", required=True, type=_PATH, help="Where to write the encrypted update (.qfl).")
@click.option("--context-fingerprint", "pinned",
              help="Refuse the context unless its fingerprint is this one (as `qsafe fl init` printed it; exit 16).")
@_key_passphrase
@_json_option
def encrypt(update: Path, context_path: Path, key_path: Path, round_: int, output: Path, pinned: str | None,
            passphrase_file: Path | None, as_json: bool) -> None:
    """Client: clip-check, encrypt and sign one update (a .safetensors file)."""
    from qsafe.federated import HEContext
    from qsafe.federated.stream import encrypt_file

    if _is_protected(context_path, "context"):  # only secret contexts are protected: say so before asking a passphrase
        raise KeyFileError(f"{context_path} is a (protected) secret context; clients get the public one",
                           hint="pass DIR/public.ctx: the secret context must stay with the key authority")
    key = load_private_key(key_path, passphrase_file)
    ctx = HEContext.load(context_path)
    if ctx.has_secret:
        raise KeyFileError(f"{context_path} is a secret context; clients get the public one",
                           hint="pass DIR/public.ctx: the secret context must stay with the key authority")
    if pinned is not None:
        ctx.require_fingerprint(pinned)
    total = _values_in(update)
    # streamed: the update is read, encrypted and written batch by batch (memory flat in the update's size)
    with atomic_output(output, inputs=(update, context_path, key_path)) as out, \
            progress(total, "encrypting") as advance:
        enc = encrypt_file(update, out, ctx, key, round_, progress=advance)
    if as_json:
        emit_json({"output": str(output), "client_key_id": enc.client_key_id, "round": enc.round,
                   "nonce": enc.nonce, "context_fingerprint": ctx.fingerprint, "values": enc.values,
                   "ciphertexts": enc.ciphertexts, "bytes": enc.bytes, "bytes_per_value": enc.bytes / enc.values,
                   "workers": enc.workers})


def _values_in(path: Path) -> int:
    """How many values the update holds (from its safetensors header; nothing else is read)."""
    import math
    import os

    from qsafe._hashing.safetensors import read_header

    try:
        with path.open("rb") as handle:
            _, header = read_header(handle, os.fstat(handle.fileno()).st_size)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror}") from exc
    return sum(math.prod(t.shape) for t in header.tensors)


@click.command()
@click.argument("updates", nargs=-1, required=True, type=_EXISTING)
@click.option("--context", "context_path", required=True, type=_EXISTING, help="The public HE context.")
@click.option("--clients", "allowlist", required=True, type=click.Path(exists=True, path_type=Path),
              help="Allowed client public keys: a file of concatenated PEMs or a directory of .pub files.")
@click.option("--round", "round_", type=click.IntRange(min=0),
              help="The round to aggregate (recommended). Default: the highest round any validly signed update names.")
@click.option("-o", "--output", required=True, type=_PATH, help="Where to write the encrypted aggregate.")
@_json_option
def aggregate(updates: tuple[Path, ...], context_path: Path, allowlist: Path, round_: int | None, output: Path,
              as_json: bool) -> None:
    """Aggregator: check and sum encrypted updates with public material only.

    Refused updates (wrong context or round, replay, unknown client, bad signature) are reported; the rest are
    still aggregated and written, and the command then exits 16.
    """
    from qsafe import keys
    from qsafe.federated import HEContext
    from qsafe.federated.stream_aggregate import aggregate_files
    from qsafe.federated.stream_aggregate import infer_round_of_files as infer_round

    ctx = HEContext.load(context_path)
    if ctx.has_secret:
        raise KeyFileError(f"{context_path} is a secret context; the aggregator must only hold the public one")
    allowed = keys.load_public_keys(allowlist)
    if round_ is None:
        round_ = infer_round(updates, ctx, allowed)
    from qsafe._io import refuse_same_file

    refuse_same_file(output, context_path)
    # streamed: two passes over the files, one ciphertext per update in memory (flat in the update's size)
    with progress(2 * len(updates), "aggregating") as advance:
        result = aggregate_files(updates, ctx, allowed, round_, output, progress=advance)
    written = bool(result.accepted)
    report = {**result.to_json(), "round": round_, "output": str(output) if written else None,
              "context_fingerprint": ctx.fingerprint}
    if as_json and not result.refused:
        emit_json(report)
    if result.refused:
        add_error_fields(**report)  # --json: the error object carries the whole report (accepted, refused, ...)
        lines = [f"{len(result.refused)} of {len(updates)} updates refused; "
                 + (f"the other {len(result.accepted)} were aggregated into {output}" if written
                    else "nothing was written")]
        lines += [f"refused {r.source}: {r.reason}" for r in result.refused]
        raise HEMismatchError(lines)  # one line per update, each escaped


@click.command()
@click.argument("aggregate_path", metavar="AGG", type=_EXISTING)
@click.option("--secret", "secret_path", required=True, type=_EXISTING, help="The secret HE context.")
@click.option("-o", "--output", required=True, type=_PATH, help="Where to write the averaged update (.safetensors).")
@click.option("--min-clients", type=click.IntRange(min=1), default=2, show_default=True,
              help="Refuse aggregates of fewer updates (one update's 'average' is that client's update).")
@click.option("--sum", "as_sum", is_flag=True, help="Write the sum instead of the average.")
@click.option("--recompute-from", "recompute", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Update files (or directories of .qfl) to re-add and compare before decrypting; needs --clients.")
@click.option("--clients", "allowlist", type=click.Path(exists=True, path_type=Path),
              help="Allowed client public keys, for --recompute-from.")
@_key_passphrase
@_json_option
def decrypt(aggregate_path: Path, secret_path: Path, output: Path, min_clients: int, as_sum: bool,
            recompute: tuple[Path, ...], allowlist: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Key authority: decrypt the aggregate into the averaged update (same tensor names, shapes, dtypes).

    With --recompute-from, the aggregate is first checked to be exactly the sum of the allowlisted, validly signed
    updates it names (so a dishonest aggregator cannot get a single client's update decrypted).
    """
    from safetensors.numpy import save

    from qsafe import keys
    from qsafe.errors import UsageError
    from qsafe.federated import EncryptedAggregate, HEContext, decrypt_aggregate, verify_aggregate

    if bool(recompute) != (allowlist is not None):
        raise UsageError("--recompute-from and --clients go together")

    from qsafe._files import read_regular
    from qsafe._limits import FL_CONTEXT_MAX_BYTES

    ctx = HEContext.from_bytes(read_regular(secret_path, "secret context", max_bytes=FL_CONTEXT_MAX_BYTES),
                               lambda: read_passphrase(passphrase_file, prompt="Secret context passphrase"))
    if not ctx.has_secret:
        raise KeyFileError(f"{secret_path} is a public context; decryption needs secret.ctx")
    agg = EncryptedAggregate.from_bytes(read_input(aggregate_path, "aggregate"))
    if allowlist is not None:
        files = [f for p in recompute for f in (_updates_in(p) if p.is_dir() else [p])]
        verify_aggregate(agg, files, ctx, keys.load_public_keys(allowlist))
    tensors = decrypt_aggregate(agg, ctx, min_clients=min_clients, average=not as_sum)
    data = save(tensors, metadata={"qsafe.fl.round": str(agg.header["round"]), "qsafe.fl.count": str(agg.count),
                                   "qsafe.fl.reduction": "sum" if as_sum else "mean"})
    with atomic_output(output, inputs=(aggregate_path, secret_path)) as out:
        out.write(data)
    if as_json:
        emit_json({"output": str(output), "round": agg.header["round"], "count": agg.count,
                   "recomputed": allowlist is not None,
                   "reduction": "sum" if as_sum else "mean",
                   "error_bound": ctx.params.error_bound(1 if not as_sum else agg.count)
                   if ctx.params.name == "bfv-packed" else None,
                   "tensors": {n: {"shape": list(t.shape), "dtype": str(t.dtype)} for n, t in tensors.items()}})


__all__ = ["aggregate", "decrypt", "encrypt", "init"]
