"""NVML access for the NVIDIA collector. ``pynvml`` (nvidia-ml-py) is imported lazily, and tests may inject a
module with the same functions (the GPU is the one boundary this machine cannot reach).
"""

from __future__ import annotations

from typing import Any

from qsafe.errors import MissingDependencyError, UnavailableError

__all__ = ["cc_state", "gpu_reports", "load_nvml"]


def load_nvml() -> Any:
    """Import and initialise NVML.

    Raises:
        MissingDependencyError: nvidia-ml-py is not installed.
        UnavailableError: no NVIDIA driver / GPU on this machine.
    """
    try:
        import pynvml
    except ImportError as exc:
        raise MissingDependencyError("NVIDIA GPU evidence needs nvidia-ml-py: pip install 'qsafe[nvidia]'") from exc
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        raise UnavailableError(f"no NVIDIA GPU available: NVML did not initialise ({exc})") from exc
    return pynvml


def cc_state(nvml: Any) -> dict[str, object]:
    """The system's confidential-computing state, as NVML reports it (driver-reported, unsigned)."""
    state = nvml.nvmlSystemGetConfComputeState()
    ready = nvml.nvmlSystemGetConfComputeGpusReadyState()
    env = {0: "unavailable", 1: "sim", 2: "prod"}.get(int(state.environment), str(state.environment))
    claims: dict[str, object] = {
        "cc_feature": "on" if int(state.ccFeature) == 1 else "off",
        "devtools_mode": "on" if int(state.devToolsMode) == 1 else "off",
        "environment": env,
        "gpus_ready": bool(int(ready)),
        "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
        "gpu_count": int(nvml.nvmlDeviceGetCount()),
    }
    return claims


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_reports(nvml: Any, nonce: bytes) -> list[dict[str, Any]]:
    """Per GPU: the attestation report bound to ``nonce`` and the device certificate chain."""
    items: list[dict[str, Any]] = []
    for index in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        report = nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
        cert = nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
        raw = bytes(report.attestationReport[: report.attestationReportSize])
        chain = bytes(cert.attestationCertChain[: cert.attestationCertChainSize])
        items.append({"kind": "nvidia-gpu", "index": index, "report": raw.hex(), "cert_chain": chain.decode("ascii")})
    return items
