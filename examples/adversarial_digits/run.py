"""Attack the shipped digits classifier, harden it, certify it, sign the evaluation, and let the gate decide.

    python examples/adversarial_digits/run.py [--quick] [--workdir DIR]

Every step runs the real ``qsafe`` command (printed before it runs). ``--quick`` trains for 3 epochs and evaluates
100 test images (a few minutes on a laptop); without it the hardened model is trained as shipped (40 epochs) and
every figure is measured on all 360 test images.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
PUBLISHER = MODELS / "publisher.pub"


def qsafe(*args: object, expect: int = 0) -> str:
    print("$ qsafe " + " ".join(str(a).replace(str(HERE) + "/", "") for a in args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "qsafe", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False)
    print(proc.stdout, end="")
    if proc.returncode != expect:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"qsafe exited {proc.returncode}, expected {expect}")
    if expect:
        print("\n".join(line for line in proc.stderr.splitlines() if "error" in line))
    print(f"(exit {proc.returncode})\n", flush=True)
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 training epochs, 100 test images")
    parser.add_argument("--workdir", type=Path, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="qsafe-adv-digits-"))
    work.mkdir(parents=True, exist_ok=True)
    samples = ["--samples", "100"] if args.quick else []
    epochs = "3" if args.quick else "40"

    print("1. The shipped pre-trained classifier verifies against its publisher's key, and falls to PGD.")
    qsafe("verify", MODELS / "standard", "--key", PUBLISHER)
    qsafe("robust", "attack", MODELS / "standard", "--key", PUBLISHER, "--epsilon", "0.1", "--epsilon", "0.2",
          "--restarts", "1", "-q", *samples)

    print("2. Harden it with TRADES at eps=0.1 (a wider CNN), and sign the result as a new release.")
    hardened = work / "digits-trades"
    hardened.mkdir(exist_ok=True)
    qsafe("robust", "train", "--recipe", "trades", "--epsilon", "0.1", "--width", "2", "--epochs", epochs,
          "-o", hardened / "model.safetensors", "-q")
    for name in ("release", "evaluator"):
        if not (work / f"{name}.key").exists():
            qsafe("keygen", "--out", work / name, "--no-passphrase")
    qsafe("sign", hardened, "--key", work / "release.key")

    print("3. An evaluator measures it (worst case over FGSM, PGD with restarts, APGD-CE) and signs the evaluation.")
    qsafe("robust", "report", hardened, "--key", work / "release.pub", "--epsilon", "0.1", "--masking-epsilon", "0.5",
          "--restarts", "2", "-o", work / "evaluation.json", "--sign", work / "evaluator.key",
          "--plot", work / "evaluation.png", "-q", *samples)

    print("4. Randomized smoothing: the shipped sigma=0.25 model, certified (Cohen et al.).")
    qsafe("robust", "certify", MODELS / "noise-sigma0.25", "--key", PUBLISHER, "--sigma", "0.25",
          "--radius", "0.25", "--radius", "0.5", "--n", "1000" if args.quick else "10000", "-q",
          *(["--samples", "50"] if args.quick else []))

    print("5. The gate: deploy only if the signed evaluation meets the policy (exit 15 names the claim otherwise).")
    policy = HERE / "policy-robust.json"
    expect = 0 if not args.quick else None
    out = subprocess.run([sys.executable, "-m", "qsafe", "verify", hardened, "--key", work / "release.pub",
                          "--evaluation", work / "evaluation.json", "--evaluator-key", work / "evaluator.pub",
                          "--policy", policy], capture_output=True, text=True, check=False)
    print(f"$ qsafe verify {hardened.name} --evaluation evaluation.json --policy policy-robust.json -> exit "
          f"{out.returncode}\n{out.stderr}")
    if expect is not None and out.returncode != expect:
        raise SystemExit("the fully trained hardened model should pass the policy")
    print("   The undefended model with an evaluation of its own is refused:")
    qsafe("robust", "report", MODELS / "standard", "--key", PUBLISHER, "--epsilon", "0.1", "--restarts", "1",
          "-o", work / "standard-evaluation.json", "--sign", work / "evaluator.key", "-q", *samples)
    qsafe("verify", MODELS / "standard", "--key", PUBLISHER, "--evaluation", work / "standard-evaluation.json",
          "--evaluator-key", work / "evaluator.pub", "--policy", policy, expect=15)
    print("   ... and the hardened model's evaluation does not pass for the standard model (another digest):")
    qsafe("verify", MODELS / "standard", "--key", PUBLISHER, "--evaluation", work / "evaluation.json",
          "--evaluator-key", work / "evaluator.pub", "--policy", policy, expect=15)
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
