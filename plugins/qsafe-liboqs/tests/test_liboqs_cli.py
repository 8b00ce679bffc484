"""The plugin through qsafe's own CLI: keygen lists and makes the new algorithms, sign/verify use them, tampering
is caught with the same exit codes as ML-DSA. No line of qsafe names these algorithms."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ALGORITHMS = ["slh-dsa-sha2-128f", "falcon-512", "falcon-1024", "slh-dsa-shake-128f",
              pytest.param("ml-dsa-65-slh-dsa-sha2-128s", marks=pytest.mark.slow)]


def test_keygen_lists_the_plugin_algorithms(cli: Callable[..., Any]) -> None:
    result = cli(["keygen", "--help"])
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())
    for name in ("slh-dsa-sha2-128s", "slh-dsa-shake-256s", "falcon-512", "falcon-1024", "ml-dsa-65-slh-dsa-sha2-128s"):
        assert name in help_text


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keygen_sign_verify_tamper(cli: Callable[..., Any], tmp_path: Path, algorithm: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    (model / "config.json").write_text('{"layers": 2}')
    made = cli(["keygen", "--alg", algorithm, "--out", tmp_path / "k", "--no-passphrase", "--json"])
    assert (made.exit_code, made.stderr) == (0, "")
    report = json.loads(made.stdout)  # stdout is JSON only: liboqs-python's import-time log line never lands there
    assert report["algorithm"] == algorithm and report["post_quantum"] is True
    signed = cli(["sign", model, "--key", tmp_path / "k.key", "--json"])
    assert (signed.exit_code, signed.stderr) == (0, ""), signed.stderr
    assert json.loads(signed.stdout)["algorithm"] == algorithm
    verified = cli(["verify", model, "--key", tmp_path / "k.pub", "--json"])
    assert verified.exit_code == 0, verified.stderr
    assert json.loads(verified.stdout)["algorithm"] == algorithm
    shown = cli(["inspect", model / "model.sig", "--json"])
    signer = json.loads(shown.stdout)["signer"]  # named as verify names it; the bundle's keyDetails beside
    assert shown.exit_code == 0 and signer["algorithm"] == algorithm and signer["key_details"].startswith("QSAFE_")
    # tampered model: exit 12; tampered signature: exit 10
    (model / "weights.bin").write_bytes(b"\x02" * 4096)
    assert cli(["verify", model, "--key", tmp_path / "k.pub"]).exit_code == 12
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    bundle = json.loads((model / "model.sig").read_text())
    import base64

    sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[len(sig) // 2] ^= 1
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (model / "model.sig").write_text(json.dumps(bundle))
    assert cli(["verify", model, "--key", tmp_path / "k.pub"]).exit_code == 10


def test_the_policy_can_pin_hash_based_signatures(tmp_path: Path) -> None:
    from qsafe import keys
    from qsafe.errors import PolicyError
    from qsafe.policy import VerificationPolicy
    from qsafe.signing import sign
    from qsafe.verifying import verify

    (tmp_path / "m.bin").write_bytes(b"w")
    key = keys.generate("slh-dsa-sha2-128f")
    sign(tmp_path / "m.bin", key, signature=tmp_path / "m.sig")
    only_slh = VerificationPolicy(algorithms=frozenset({"slh-dsa-sha2-128f"}))
    assert verify(tmp_path / "m.bin", tmp_path / "m.sig", key.public_key(), policy=only_slh).algorithm == \
        "slh-dsa-sha2-128f"
    with pytest.raises(PolicyError):
        verify(tmp_path / "m.bin", tmp_path / "m.sig", key.public_key(),
               policy=VerificationPolicy(algorithms=frozenset({"ml-dsa-87"})))
