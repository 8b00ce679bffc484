"""Software-environment claims: OS/kernel, Python, qsafe, torch/CUDA (only if torch is already imported or asked
for), the NVIDIA driver (from /proc when present) and a digest of every installed distribution."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["distributions_digest", "software_claims"]

_NVIDIA_PROC = Path("/proc/driver/nvidia/version")


def distributions_digest() -> tuple[str, int]:
    """``sha256:`` over sorted ``name==version`` lines of the installed distributions, and their count."""
    lines = sorted({f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in metadata.distributions()})
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest(), len(lines)


def _nvidia_driver() -> str | None:
    try:
        text = _NVIDIA_PROC.read_text()
    except OSError:
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  ..."
    for token in text.split():
        if token.count(".") >= 1 and token.replace(".", "").isdigit():
            return token
    return None


def _torch_claims() -> dict[str, str]:
    try:
        import torch
    except ImportError:
        return {}
    out = {"torch": str(torch.__version__)}
    if torch.version.cuda:
        out["cuda_runtime"] = str(torch.version.cuda)
    return out


def software_claims(*, include_torch: bool = False) -> dict[str, Any]:
    """Collect software claims. torch is imported only if already loaded or ``include_torch`` is set."""
    from qsafe import __version__

    digest, count = distributions_digest()
    claims: dict[str, Any] = {
        "os": platform.system().lower(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation().lower(),
        "qsafe": __version__,
        "distributions_digest": digest,
        "distributions_count": count,
    }
    driver = _nvidia_driver()
    if driver:
        claims["nvidia_driver"] = driver
    if include_torch or "torch" in sys.modules:
        claims.update(_torch_claims())
    return claims
