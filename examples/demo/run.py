"""`make demo`: the whole of qsafe on a built-in default, in one run.

Makes post-quantum keys; signs a small safetensors model, verifies it, tampers one tensor and shows the named
failure; encrypts the model to a post-quantum recipient and back; runs one encrypted federated round with three
signed clients; runs the federated backdoor scenario with and without a robust defense; appraises recorded GPU
evidence and loads the signed model through the attestation gate. Each part lives in its own module here.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Each step is a module in this folder with `run(workdir: Path) -> None`; it raises on any unexpected outcome.
STEPS = ["demo_keys", "demo_signing", "demo_encryption", "demo_federated", "demo_backdoor", "demo_attestation"]


def main() -> int:
    start = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="qsafe-demo-") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)  # transcripts then show short paths (model/, keys/ …) instead of /tmp/qsafe-demo-…
        try:
            for name in STEPS:
                module = importlib.import_module(name)
                print(f"\n=== {module.TITLE} ===", flush=True)
                module.run(workdir)
        finally:
            os.chdir(start)
    print("\nqsafe demo: every step behaved as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
