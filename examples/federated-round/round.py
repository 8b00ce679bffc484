"""One encrypted federated round, role by role: the aggregator sums updates it cannot read.

    python round.py UPDATE.safetensors [UPDATE.safetensors ...] [--round N] [-o AVERAGE.safetensors]

Each UPDATE is one client's model update (float16/32/64 tensors, every value within the clip bound, 1.0 here; the
same names and shapes in every update). Each role only sees what it would see in a deployment — bytes passed
between functions stand for files or messages:

- the key authority makes the HE context and keeps the secret half;
- each client encrypts and signs its update with the public context and its own ML-DSA key;
- the aggregator checks every signature against its allowlist and sums the ciphertexts (public material only);
- the key authority decrypts only the aggregate, and writes the average.

Needs the `he` and `safetensors` extras. The CLI does the same with files: README's tour, step 4.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.numpy import load_file, save_file

from qsafe import keys
from qsafe.errors import QsafeError
from qsafe.federated import EncryptedAggregate, EncryptedUpdate, HEContext, aggregate, decrypt_aggregate, encrypt_update


def key_authority_setup() -> tuple[HEContext, bytes]:
    """The secret context stays here; the public bytes go to clients and the aggregator."""
    secret = HEContext.generate(clip=1.0)
    return secret, secret.public().public_bytes()


def client(update_path: Path, public_context: bytes, signing_key: keys.PrivateKey, round_number: int) -> bytes:
    """Encrypt and sign one update; returns what the client sends (a .qfl file's bytes)."""
    tensors = load_file(str(update_path))
    context = HEContext.from_bytes(public_context)
    return encrypt_update(tensors, context, signing_key, round=round_number).to_bytes()


def aggregator(messages: list[bytes], public_context: bytes, allowlist: list[keys.PublicKey],
               round_number: int) -> bytes:
    """Check and sum; refuses (and reports) any update not signed by an allowlisted client for this round."""
    context = HEContext.from_bytes(public_context)
    result = aggregate([EncryptedUpdate.from_bytes(m) for m in messages], context, allowlist, round=round_number)
    for refusal in result.refused:
        print(f"aggregator: refused {refusal.to_json()}", file=sys.stderr)
    if result.aggregate is None:
        raise SystemExit("aggregator: no update was accepted")
    print(f"aggregator: summed {len(result.accepted)} encrypted updates for round {round_number}")
    return result.aggregate.to_bytes()


def key_authority_decrypt(secret: HEContext, aggregate_bytes: bytes, output: Path) -> None:
    average = decrypt_aggregate(EncryptedAggregate.from_bytes(aggregate_bytes), secret)
    save_file(average, str(output))
    print(f"key authority: wrote the average of the round to {output}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("updates", nargs="+", type=Path, help="one .safetensors update per client (at least 2)")
    parser.add_argument("--round", type=int, default=1, dest="round_number")
    parser.add_argument("-o", "--output", type=Path, default=Path("average.safetensors"))
    args = parser.parse_args(argv)
    if len(args.updates) < 2:
        parser.error("give at least two updates: a one-client average would reveal that client's update")
    try:
        secret, public_context = key_authority_setup()
        client_keys = [keys.generate("ml-dsa-65") for _ in args.updates]       # each client's own key
        allowlist = [k.public_key() for k in client_keys]                      # what the aggregator trusts
        messages = [client(u, public_context, k, args.round_number) for u, k in zip(args.updates, client_keys)]
        summed = aggregator(messages, public_context, allowlist, args.round_number)
        key_authority_decrypt(secret, summed, args.output)
    except QsafeError as err:
        print(f"round.py: {err} ({err.hint})", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
