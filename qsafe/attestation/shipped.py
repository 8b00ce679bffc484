"""Attestation data shipped inside the package: ready policies, addressable by name, and recorded evidence.

Policies live in ``qsafe/attestation/data/policies/NAME.json`` (the repository's ``attestations/policies`` points
there), recorded evidence in ``qsafe/attestation/data/evidence/NAME.evidence.json`` with its provenance in the
repository's ``attestations/PROVENANCE.md``. Each recorded evidence file carries, in its ``nonce`` field, the
challenge nonce the report was made for (an appraisal never trusts that field: the verifier passes the nonce it
issued; it is there so a reader can replay the recorded challenge).

Name or path: an argument without a path separator that does not end in ``.json`` is a shipped policy's name
(``nvidia-hopper-cc``); anything else is a file path (write ``./NAME`` for a file of that name in the current
directory). So a file in the current directory can never silently stand in for a shipped policy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from qsafe.errors import UsageError

__all__ = [
    "RecordedEvidence",
    "is_policy_name",
    "policy_names",
    "policy_path",
    "recorded",
    "recorded_evidence",
    "resolve_policy",
]

DATA = Path(__file__).resolve().parent / "data"
POLICY_DIR = DATA / "policies"
EVIDENCE_DIR = DATA / "evidence"


@dataclass(frozen=True)
class RecordedEvidence:
    """A recorded evidence file shipped with qsafe.

    Attributes:
        name: the name to ask for (``qsafe attest recorded NAME``).
        description: what was recorded and where it comes from.
        policy: the shipped policy it satisfies when replayed with its nonce at ``at``.
        at: a verification time at which its certificates are valid and ``collected_at`` is fresh.
        path: the file inside the installed package.
    """

    name: str
    description: str
    policy: str
    at: dt.datetime
    path: Path

    @property
    def nonce(self) -> str:
        """The challenge nonce (hex) the recorded report carries, from the file's own ``nonce`` field."""
        value = json.loads(self.path.read_text(encoding="utf-8")).get("nonce")
        return str(value) if value else ""

    @property
    def kinds(self) -> list[str]:
        return [str(item.get("kind")) for item in json.loads(self.path.read_text(encoding="utf-8"))["items"]]


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


_RECORDED: tuple[tuple[str, str, str, str], ...] = (
    ("hopper-h100", "NVIDIA H100, driver 550.90.07: NVIDIA nvtrust's local GPU verifier sample",
     "nvidia-hopper-cc", "2024-05-01T00:01:00"),
    ("hopper-8gpu-ppcie", "8x NVIDIA H100 (protected PCIe), driver 590.12: NVIDIA nvtrust's PPCIe verifier test data",
     "nvidia-hopper-cc", "2026-01-01T00:01:00"),
    ("blackwell-rtxpro6000", ("NVIDIA RTX PRO 6000 Blackwell, driver 595.58.03: Confidential Containers trustee "
     "test data"), "nvidia-blackwell-cc", "2026-06-01T00:01:00"),
    ("sev-snp-milan", "AMD SEV-SNP report (Milan, VCEK-signed): Confidential Containers trustee test data",
     "amd-sev-snp", "2024-01-01T00:01:00"),
    ("tdx", "Intel TDX quote with its collateral: Phala Network dcap-qvl sample", "intel-tdx", "2025-06-19T11:16:03"),
)


def policy_names() -> list[str]:
    """Names of the shipped policies, sorted."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.json"))


def is_policy_name(value: str) -> bool:
    """True when ``value`` is to be read as a shipped policy's name, not as a path."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return bool(value) and not any(s in value for s in seps) and not value.endswith(".json")


def policy_path(name: str) -> Path:
    """The file of the shipped policy ``name``.

    Raises:
        UsageError: no shipped policy has that name (the message lists them).
    """
    if name in policy_names():
        return POLICY_DIR / f"{name}.json"
    raise UsageError(f"no shipped attestation policy is named {name!r}",
                     hint=f"shipped policies: {', '.join(policy_names())} (`qsafe attest policies`); for a file "
                          f"of that name write ./{name}")


def resolve_policy(value: str | os.PathLike[str]) -> Path:
    """A shipped policy's file for a name, else the path itself (not checked here)."""
    text = os.fspath(value)
    return policy_path(text) if is_policy_name(text) else Path(text)


def recorded_evidence() -> list[RecordedEvidence]:
    """Every shipped recorded evidence, in a stable order."""
    return [RecordedEvidence(name, description, policy, _utc(at), EVIDENCE_DIR / f"{name}.evidence.json")
            for name, description, policy, at in _RECORDED]


def recorded(name: str) -> RecordedEvidence:
    """One shipped recorded evidence by name.

    Raises:
        UsageError: unknown name (the message lists the known ones).
    """
    for item in recorded_evidence():
        if item.name == name:
            return item
    raise UsageError(f"no recorded evidence is named {name!r}",
                     hint=f"recorded evidence: {', '.join(r.name for r in recorded_evidence())} "
                          "(`qsafe attest recorded`)")
