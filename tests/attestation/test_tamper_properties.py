"""Hypothesis: no flipped or truncated byte of a real GPU or SEV-SNP report ever verifies."""

from __future__ import annotations

import base64
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from qsafe.attestation.verifiers import verify_item
from qsafe.errors import FormatError

from .conftest import SNP_AT, evidence

AT = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
GPU = evidence("hopper-h100").items[0]
GPU_RAW = bytes.fromhex(GPU["report"])
SNP = evidence("sev-snp-milan").items[0]
SNP_RAW = base64.b64decode(SNP["report"])


def _gpu_outcome(raw: bytes) -> str:
    try:
        res = verify_item({**GPU, "report": raw.hex()}, 0, AT, None)
    except FormatError:
        return "format"
    return ",".join(sorted(res.failed)) or "pass"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(GPU_RAW) - 1), st.integers(1, 255))
def test_gpu_flip_never_passes(offset: int, mask: int) -> None:
    raw = bytearray(GPU_RAW)
    raw[offset] ^= mask
    assert _gpu_outcome(bytes(raw)) in ("format", "signature")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, len(GPU_RAW) - 1))
def test_gpu_truncation_never_passes(cut: int) -> None:
    assert _gpu_outcome(GPU_RAW[:-cut]) in ("format", "signature")


@settings(max_examples=10, deadline=None)
@given(st.binary(min_size=1, max_size=8))
def test_gpu_appended_bytes_are_outside_the_signed_range_and_reported(tail: bytes) -> None:
    res = verify_item({**GPU, "report": (GPU_RAW + tail).hex()}, 0, AT, None)
    assert res.failed == {} and res.claims["trailing_bytes"] == len(tail)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 0x2A0 - 1), st.integers(1, 255))
def test_snp_flip_never_passes(offset: int, mask: int) -> None:
    raw = bytearray(SNP_RAW)
    raw[offset] ^= mask
    try:
        res = verify_item({**SNP, "report": base64.b64encode(bytes(raw)).decode()}, 0, SNP_AT, None)
    except FormatError:
        return  # version / algorithm fields now unsupported
    assert list(res.failed) == ["signature"]
