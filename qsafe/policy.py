"""What a verifier accepts once a signature is valid.

The default policy requires a post-quantum signature (ML-DSA or a composite that contains ML-DSA). A
classical-only signature (a model-signing ECDSA bundle) passes only with an explicit ``allow_classical=True``
(CLI: ``--allow-classical``).
"""

from __future__ import annotations

from dataclasses import dataclass

from qsafe.errors import PolicyError
from qsafe.keys import PublicKey

__all__ = ["VerificationPolicy"]


@dataclass(frozen=True)
class VerificationPolicy:
    """A verification policy; pass it explicitly to :func:`qsafe.verify`.

    Attributes:
        allow_classical: accept signatures whose security is classical only (ECDSA). Default False.
        algorithms: if set, the only signing algorithms accepted (qsafe ids, e.g. ``{"ml-dsa-87"}``).
    """

    allow_classical: bool = False
    algorithms: frozenset[str] | None = None

    def check(self, key: PublicKey) -> None:
        """Accept or refuse a signature that verified with ``key``.

        Raises:
            PolicyError: the algorithm is classical-only (without ``allow_classical``) or not in ``algorithms``.
        """
        if self.algorithms is not None and key.algorithm not in self.algorithms:
            raise PolicyError(
                f"signature algorithm {key.algorithm} is not allowed by the policy "
                f"(allowed: {', '.join(sorted(self.algorithms)) or 'none'})",
                hint="sign with an allowed algorithm, or widen the policy",
            )
        if not key.post_quantum and not self.allow_classical:
            raise PolicyError(
                f"the signature is classical-only ({key.algorithm}); the policy requires a post-quantum signature",
            )
