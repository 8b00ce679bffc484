"""qsafe-liboqs: more post-quantum signature schemes for qsafe, through liboqs (Open Quantum Safe).

Registers in qsafe's ``qsafe.signers`` group (see this distribution's ``pyproject.toml``):

- SLH-DSA, FIPS 205, pure mode with a context string: all twelve parameter sets (``slh-dsa-sha2-128s`` ...
  ``slh-dsa-shake-256f``), keys in SPKI / PKCS#8 with the RFC 9909 OIDs;
- Falcon-512 / Falcon-1024 (FN-DSA, FIPS 206 not final: liboqs's round-3 Falcon), OIDs from the Open Quantum
  Safe experimental arc (no IETF OID is assigned yet);
- composites ML-DSA + SLH-DSA (``ml-dsa-65-slh-dsa-sha2-128s``, ``ml-dsa-87-slh-dsa-sha2-256s``): one signature
  that carries both, both must verify, so a hash-based signature stands beside ML-DSA in one release.

ML-DSA through liboqs (:data:`qsafe_liboqs.mldsa.ML_DSA_65` ...) is a second implementation to cross-check
cryptography's; it is not registered (qsafe's built-in ML-DSA owns those names and OIDs).

Nothing here imports ``oqs`` until a key is used, and then only after the liboqs C library was found
(:func:`qsafe_liboqs.liboqs.require`): a bare ``import oqs`` without it starts a download and exits.
"""

from __future__ import annotations

__version__ = "0.1.0"
