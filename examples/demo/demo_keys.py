"""Demo step: post-quantum signing keys through the real ``qsafe keygen`` command and the ``qsafe.keys`` API.

Makes a passphrase-protected composite ML-DSA-65 + Ed25519 key (draft-ietf-lamps-pq-composite-sigs-19), signs,
shows that neither half of the composite signature verifies alone, that a wrong passphrase is refused (exit 4)
and that keygen never overwrites a key (exit 2).
"""

from __future__ import annotations

import functools
from pathlib import Path

from _cli import qsafe  # examples/demo/_cli.py: one runner for every step

TITLE = "Keys: passphrase-protected composite ML-DSA-65 + Ed25519, both halves required"


_qsafe = functools.partial(qsafe, expect=0, show=False)

def run(workdir: Path) -> None:
    from qsafe import keys
    from qsafe._crypto.composite import COMPOSITES
    from qsafe.errors import SignatureError, WrongPassphraseError

    d = workdir / "keys"
    d.mkdir()
    key_id = _qsafe("keygen", "--alg", "ml-dsa-65-ed25519", "--out", d / "release",
                    passphrase="demo passphrase").stdout.strip()
    public = keys.load_public_key(d / "release.pub")
    if public.key_id != key_id or not public.post_quantum:
        raise RuntimeError("keygen printed a key id that does not match release.pub")
    print(f"$ qsafe keygen --alg ml-dsa-65-ed25519 --out {d.relative_to(workdir) / 'release'}  (passphrase from "
          "$QSAFE_PASSPHRASE)")
    print(f"release key {key_id[:23]}…  {public.description}")
    private = keys.load_private_key(d / "release.key", b"demo passphrase")
    context = b"qsafe/v1 demo"
    signature = private.sign(b"model root digest", context)
    public.verify(signature, b"model root digest", context)
    split = COMPOSITES["ml-dsa-65-ed25519"].mldsa_sig_len
    for label, part in (("ML-DSA half only", signature[:split]), ("Ed25519 half only", signature[split:])):
        try:
            public.verify(part, b"model root digest", context)
        except SignatureError:
            print(f"{label}: rejected (both halves are required)")
        else:
            raise RuntimeError(f"{label} verified: a composite half must not verify alone")
    try:
        keys.load_private_key(d / "release.key", b"not the passphrase")
    except WrongPassphraseError as err:
        print(f"wrong passphrase: refused (exit code {err.exit_code})")
    else:
        raise RuntimeError("a wrong passphrase opened the key")
    again = _qsafe("keygen", "--out", d / "release", "--no-passphrase", expect=2)
    if "refusing to overwrite" not in again.stderr:
        raise RuntimeError(f"keygen over an existing key failed for another reason:\n{again.stderr}")
    print("keygen again with the same --out: refused as expected (exit 2), the existing key is kept:")
    print("  " + again.stderr.strip().splitlines()[0].replace(str(workdir) + "/", ""))
