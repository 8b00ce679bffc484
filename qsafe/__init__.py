"""qsafe: quantum-safe model integrity and confidential compute.

The public API is imported lazily so that ``import qsafe`` (and ``qsafe verify``) stays fast and never pulls in
torch or tenseal.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "sign": "qsafe.signing",
    "verify": "qsafe.verifying",
    "VerificationPolicy": "qsafe.policy",
    "encrypt": "qsafe.encryption",
    "decrypt": "qsafe.encryption",
    "load_model": "qsafe.loading",
    "federated": "qsafe.federated",
    "errors": "qsafe.errors",
    "keys": "qsafe.keys",
    "model_evidence": "qsafe.model_evidence",
    "AllOf": "qsafe.policy",
    "AnyOf": "qsafe.policy",
    "CertificateIdentity": "qsafe.policy",
    "Identity": "qsafe.policy",
    "PostQuantum": "qsafe.policy",
    "TrustRoot": "qsafe.keyless",
    "keyless": "qsafe.keyless",
    "pki": "qsafe.pki",
    "certificates": "qsafe.certificates",
}

__all__ = [
    "AllOf",
    "AnyOf",
    "CertificateIdentity",
    "Identity",
    "PostQuantum",
    "TrustRoot",
    "VerificationPolicy",
    "__version__",
    "certificates",
    "decrypt",
    "encrypt",
    "errors",
    "federated",
    "keyless",
    "keys",
    "load_model",
    "model_evidence",
    "pki",
    "sign",
    "verify",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'qsafe' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
