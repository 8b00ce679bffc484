"""Recorded evidence and policies for the attestation tests (all inside the repository)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from qsafe.attestation import Evidence, load_evidence, load_policy
from qsafe.attestation.policy import Policy

REPO = Path(__file__).resolve().parents[2]
ATT = REPO / "attestations"
EVIDENCE = ATT / "evidence"
RECORDED = EVIDENCE / "recorded"
POLICIES = ATT / "policies"

HOPPER_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
HOPPER_AT = dt.datetime(2024, 5, 1, 0, 1, tzinfo=dt.timezone.utc)
PPCIE_NONCE = bytes.fromhex("4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e")
PPCIE_AT = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.timezone.utc)
BLACKWELL_NONCE = bytes.fromhex("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e")
BLACKWELL_AT = dt.datetime(2026, 6, 1, 0, 1, tzinfo=dt.timezone.utc)
TDX_AT = dt.datetime(2025, 6, 19, 11, 16, 3, tzinfo=dt.timezone.utc)
SNP_AT = dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.timezone.utc)


def policy(name: str) -> Policy:
    return load_policy(POLICIES / f"{name}.json")


def evidence(name: str) -> Evidence:
    return load_evidence(EVIDENCE / f"{name}.evidence.json")


@pytest.fixture()
def hopper() -> Evidence:
    return evidence("hopper-h100")


class _NVMLError(Exception):
    pass


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pynvml whose nvmlInit fails as on a machine without the NVIDIA driver, whatever this host has."""
    import sys
    import types

    fake = types.ModuleType("pynvml")

    def init() -> None:
        raise _NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
