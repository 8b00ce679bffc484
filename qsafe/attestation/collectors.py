"""Evidence collectors behind one interface, discovered through the ``qsafe.collectors`` entry-point group.

A collector turns a 32-byte *binding value* (see :func:`qsafe.attestation.binding_hash`) into evidence items.
Device collectors raise :class:`~qsafe.errors.UnavailableError` where the device is absent: they never invent a
passing answer.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qsafe.attestation.evidence import Evidence, load_evidence
from qsafe.errors import FormatError, UnavailableError

__all__ = [
    "Collector",
    "NvidiaGpuCollector",
    "ReplayCollector",
    "SoftwareCollector",
    "TsmCollector",
]

BINDING_LEN = 32


@runtime_checkable
class Collector(Protocol):
    """What every collector (built-in or plugin) implements."""

    name: str

    def collect(self, binding: bytes) -> list[dict[str, Any]]:
        """Return evidence items bound to ``binding`` (32 bytes) where the source supports binding.

        Raises:
            UnavailableError: the source is not on this machine.
        """
        ...


class SoftwareCollector:
    """OS/kernel, Python, qsafe, torch/CUDA (if torch is loaded), NVIDIA driver, installed distributions."""

    name = "software"

    def __init__(self, *, include_torch: bool = False) -> None:
        self.include_torch = include_torch

    def collect(self, binding: bytes) -> list[dict[str, Any]]:
        from qsafe._attest.software import software_claims

        return [{"kind": "software", "claims": software_claims(include_torch=self.include_torch)}]


class NvidiaGpuCollector:
    """NVML: confidential-computing state, GPU ready state, and per GPU a report bound to the nonce + chain.

    Args:
        nvml: an NVML module (default: ``pynvml``, imported lazily); tests inject a recorded one.
    """

    name = "nvidia-gpu"

    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml

    def collect(self, binding: bytes) -> list[dict[str, Any]]:
        from qsafe._attest import nvml as _nvml

        module = self._nvml if self._nvml is not None else _nvml.load_nvml()
        if int(module.nvmlDeviceGetCount()) == 0:
            raise UnavailableError("NVML found no NVIDIA GPU")
        state = _nvml.cc_state(module)
        items: list[dict[str, Any]] = [{"kind": "nvidia-cc", "claims": state}]
        if state["cc_feature"] == "on":
            # Reports exist only in CC mode; with CC off the policy sees no GPU report and denies.
            items += _nvml.gpu_reports(module, binding)
        return items


class TsmCollector:
    """Intel TDX / AMD SEV-SNP report through configfs-tsm; ``root`` may point at a fake directory in tests.

    The 32-byte binding goes into the first half of the 64-byte report data; the rest is zero.
    """

    name = "tsm"

    def __init__(self, root: str | Path | None = None, *, tdx_collateral: dict[str, Any] | None = None) -> None:
        from qsafe._attest.tsm import TSM_ROOT

        self.root = Path(root) if root is not None else TSM_ROOT
        self.tdx_collateral = tdx_collateral

    def collect(self, binding: bytes) -> list[dict[str, Any]]:
        from qsafe._attest import tsm

        report = tsm.request_report(binding.ljust(64, b"\x00"), self.root)
        provenance = f"configfs-tsm provider {report.provider}, generation {report.generation}"
        if report.provider == "sev_guest":
            certs = tsm.parse_cert_table(report.auxblob) if report.auxblob else {}
            pem = _ders_to_pem([certs[k] for k in ("vlek", "vcek", "ask", "ark") if k in certs])
            return [{"kind": "sev-snp", "report": base64.b64encode(report.outblob).decode(), "certs": pem,
                     "provenance": provenance}]
        if report.provider == "tdx_guest":
            return [{"kind": "tdx", "quote": base64.b64encode(report.outblob).decode(),
                     "collateral": self.tdx_collateral, "provenance": provenance}]
        raise FormatError(f"unknown configfs-tsm provider {report.provider!r}")


def _ders_to_pem(ders: list[bytes]) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    from qsafe._attest.x509chain import load_der_or_pem

    return "".join(load_der_or_pem(d)[0].public_bytes(Encoding.PEM).decode() for d in ders)


class ReplayCollector:
    """Reads recorded evidence (a qsafe evidence file). The items are returned as recorded, so their nonce is
    the recorded one: only a policy that accepts replayed evidence lets them pass a binding check."""

    name = "replay"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Evidence:
        """The whole recorded document (its time and nonce included)."""
        return load_evidence(self.path)

    def collect(self, binding: bytes) -> list[dict[str, Any]]:
        return list(self.load().items)

