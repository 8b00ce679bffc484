"""Demo step: attest, then load only a verified model.

1. Appraises a real recorded NVIDIA H100 evidence (nvtrust sample) with the Hopper CC policy at a pinned time and
   the nonce it was recorded for, writing an ML-DSA-signed in-toto result, and checks that result.
2. Flips one byte of the GPU report in a copy: denied, exit 15, the failed check named.
3. Loads the signed demo model (``workdir/model`` from the signing step) through the gate, tensors verified in
   the same read; shows that collecting live evidence on a machine without a GPU exits 6 (never a fake pass),
   and that the development policy's acceptance of replayed evidence is announced.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _cli import qsafe  # examples/demo/_cli.py: one runner for every step

from qsafe import keys

TITLE = "Attestation: appraise recorded GPU evidence, refuse a tampered report, load through the gate"
from _cli import REPO

ATT = REPO / "attestations"
EVIDENCE = ATT / "evidence" / "hopper-h100.evidence.json"
HOPPER_POLICY = ATT / "policies" / "nvidia-hopper-cc.json"
DEV_POLICY = ATT / "policies" / "unsafe-development-replay.json"
# The nonce the recorded report was made for, and a verification time just after its nominal collection.
RECORDED_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
AT = "2024-05-01T00:01:00Z"


_qsafe = qsafe

def _expect(proc: subprocess.CompletedProcess[str], code: int, *, stderr_has: str = "", quiet: bool = False,
            why: str = "") -> None:
    if proc.returncode != code or stderr_has not in proc.stderr or (quiet and proc.stderr):
        raise RuntimeError(f"expected exit {code}, got {proc.returncode}: {proc.stderr.strip()}")
    lines = proc.stderr.strip().splitlines()
    for line in lines[:6]:
        print(f"  {line}")
    if len(lines) > 6:
        print(f"  … ({len(lines) - 6} more line(s))")
    print(f"  exit {proc.returncode}" + (f", as expected: {why}" if why else ""))


def appraise(workdir: Path) -> None:
    key = keys.generate("ml-dsa-65")
    (workdir / "keys").mkdir(exist_ok=True)
    priv, pub = workdir / "keys" / "appraiser.key", workdir / "keys" / "appraiser.pub"
    priv.write_bytes(key.to_pem())
    pub.write_bytes(key.public_key().to_pem())
    result = workdir / "attestation-result.json"
    _expect(_qsafe("attest", "verify", EVIDENCE, "--policy", HOPPER_POLICY, "--nonce", RECORDED_NONCE, "--at", AT,
                   "-o", result, "--key", priv), 0, quiet=True)
    statement = json.loads(_qsafe("attest", "check-result", result, "--key", pub, "--json").stdout)
    pred = statement["predicate"]
    if pred["verdict"] != "allow":
        raise RuntimeError("the recorded Hopper evidence should satisfy its policy")
    print(f"  signed result: verdict {pred['verdict']}, freshness {pred['freshness']['mode']} "
          f"(binding checked: {pred['freshness']['bindingChecked']}), driver {pred['claims']['gpu[0].driver_version']}")


def tamper(workdir: Path) -> None:
    doc = json.loads(EVIDENCE.read_text())
    report = bytearray(bytes.fromhex(doc["items"][0]["report"]))
    report[200] ^= 0x01  # one bit inside the signed measurement record
    doc["items"][0]["report"] = report.hex()
    bad = workdir / "hopper-tampered.evidence.json"
    bad.write_text(json.dumps(doc))
    print("  flipped one bit of the GPU report in a copy")
    _expect(_qsafe("attest", "verify", bad, "--policy", HOPPER_POLICY, "--nonce", RECORDED_NONCE, "--at", AT), 15,
            stderr_has="gpu[0].signature", why="the tampered report is refused")


def gate(workdir: Path) -> None:
    model, pub = workdir / "model", workdir / "keys" / "signer.pub"
    if not (model / "model.sig").exists():
        raise RuntimeError("the signing step must run first (it leaves workdir/model and workdir/keys)")
    _expect(_qsafe("load", model, "--signature", model / "model.sig", "--key", pub, "--policy", HOPPER_POLICY,
                   "--evidence", EVIDENCE, "--nonce", RECORDED_NONCE, "--at", AT, "--framework", "numpy"), 0, quiet=True)
    print("  loaded: signature verified, evidence appraised, every tensor hashed in the same read")
    live = _qsafe("load", model, "--key", pub, "--policy", HOPPER_POLICY, "--collect", "--framework", "numpy")
    # The outcome depends on this host: 6 without a GPU (never a fake pass), 15 with a GPU not in CC mode, 0 when
    # a CC-mode Hopper GPU produced reports bound to this model and policy.
    why = {0: "a CC-mode GPU attested this machine", 6: "no GPU here, so no load (never a fake pass)",
           15: "the GPU here does not satisfy the policy, so no load"}
    _expect(live, live.returncode if live.returncode in (0, 6, 15) else 6, why=why.get(live.returncode, ""))
    _expect(_qsafe("load", model, "--key", pub, "--policy", DEV_POLICY, "--evidence", EVIDENCE, "--framework", "numpy"),
            0, stderr_has="accepted replayed evidence", why="a development-only policy, which says so loudly")


def run(workdir: Path) -> None:
    appraise(workdir)
    tamper(workdir)
    gate(workdir)
