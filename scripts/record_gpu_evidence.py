#!/usr/bin/env python3
"""Record NVIDIA GPU confidential-computing state (and, in CC mode, one attestation report) with provenance.

Run on a machine with an NVIDIA GPU and driver (``pip install nvidia-ml-py``). Never used by the tests: it makes
new recorded data for ``attestations/evidence/`` that a reviewer then inspects and commits with its PROVENANCE.

What it writes into OUTDIR (default ``./gpu-evidence-<UTC time>``):

- ``nvml_state.json``: per GPU name, UUID, driver/VBIOS, NVML CC state (feature, environment, devtools mode,
  GPUs-ready), CC capabilities, and every NVML call that failed with its error (nothing is invented);
- when CC mode is on: ``gpu0.evidence.json`` (qsafe evidence: one SPDM report bound to a fresh 32-byte nonce,
  plus the device certificate chain), its raw ``gpu0_report.bin`` and ``gpu0_cert_chain.pem``, and the result
  of appraising it offline with qsafe at the recording time (``gpu0_appraisal.json``);
- ``PROVENANCE.md``: host, kernel, driver, nvidia-ml-py version, time, nonce, SHA-256 of every file.

Exit status: 0 recorded; 6 no GPU / NVML unavailable; 5 nvidia-ml-py missing.
Usage: python scripts/record_gpu_evidence.py [OUTDIR] [--gpu INDEX]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import secrets
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _call(errors: dict[str, str], name: str, fn: Any, *args: Any) -> Any:
    try:
        value = fn(*args)
    except Exception as exc:  # noqa: BLE001 - NVMLError_NotSupported and friends: record, never guess
        errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    return value.decode() if isinstance(value, bytes) else value


def nvml_state(nvml: Any) -> dict[str, Any]:
    errors: dict[str, str] = {}
    state: dict[str, Any] = {"errors": errors}
    cc = _call(errors, "nvmlSystemGetConfComputeState", nvml.nvmlSystemGetConfComputeState)
    if cc is not None:
        state["cc_state"] = {"environment": int(cc.environment), "ccFeature": int(cc.ccFeature),
                             "devToolsMode": int(cc.devToolsMode)}
    caps = _call(errors, "nvmlSystemGetConfComputeCapabilities", nvml.nvmlSystemGetConfComputeCapabilities)
    if caps is not None:
        state["cc_capabilities"] = {"cpuCaps": int(caps.cpuCaps), "gpusCaps": int(caps.gpusCaps)}
    state["gpus_ready"] = _call(errors, "nvmlSystemGetConfComputeGpusReadyState",
                                nvml.nvmlSystemGetConfComputeGpusReadyState)
    state["driver_version"] = _call(errors, "nvmlSystemGetDriverVersion", nvml.nvmlSystemGetDriverVersion)
    gpus = []
    for i in range(int(nvml.nvmlDeviceGetCount())):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        gpus.append({
            "index": i,
            "name": _call(errors, f"gpu{i}.name", nvml.nvmlDeviceGetName, h),
            "uuid": _call(errors, f"gpu{i}.uuid", nvml.nvmlDeviceGetUUID, h),
            "vbios": _call(errors, f"gpu{i}.vbios", nvml.nvmlDeviceGetVbiosVersion, h),
        })
    state["gpus"] = gpus
    return state


def record_report(nvml: Any, index: int, out: Path, now: dt.datetime) -> list[Path]:
    from qsafe._attest.nvml import gpu_reports
    from qsafe.attestation import Evidence, appraise, load_policy

    nonce = secrets.token_bytes(32)
    items = [item for item in gpu_reports(nvml, nonce) if item["index"] == index]
    items[0]["provenance"] = f"recorded by scripts/record_gpu_evidence.py on {platform.node()} at {now.isoformat()}"
    evidence = Evidence(collected_at=now, nonce=nonce, items=items)
    files = [out / f"gpu{index}.evidence.json", out / f"gpu{index}_report.bin", out / f"gpu{index}_cert_chain.pem"]
    files[0].write_bytes(evidence.to_bytes())
    files[1].write_bytes(bytes.fromhex(items[0]["report"]))
    files[2].write_text(items[0]["cert_chain"])
    results = {}
    for name in ("nvidia-hopper-cc", "nvidia-blackwell-cc"):
        policy = load_policy(REPO / "attestations" / "policies" / f"{name}.json")
        results[name] = appraise(evidence, policy, at=now, nonce=nonce).predicate()
    files.append(out / f"gpu{index}_appraisal.json")
    files[-1].write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return files


def write_provenance(out: Path, files: list[Path], state: dict[str, Any], now: dt.datetime, nonce_note: str) -> None:
    from importlib import metadata

    lines = [
        "# Provenance of this GPU recording", "",
        f"- recorded: {now.isoformat()} by `scripts/record_gpu_evidence.py` (qsafe repository)",
        f"- host: {platform.node()}, kernel {platform.release()}, Python {platform.python_version()}",
        f"- NVIDIA driver (NVML): {state.get('driver_version')}; nvidia-ml-py {metadata.version('nvidia-ml-py')}",
        f"- CC state: {state.get('cc_state')}; GPUs ready: {state.get('gpus_ready')}",
        f"- {nonce_note}", "", "| file | SHA-256 |", "|---|---|",
    ]
    lines += [f"| {f.name} | {hashlib.sha256(f.read_bytes()).hexdigest()} |" for f in files]
    (out / "PROVENANCE.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description="Record NVIDIA CC state and one attestation report.")
    parser.add_argument("outdir", nargs="?", type=Path)
    parser.add_argument("--gpu", type=int, default=0)
    args = parser.parse_args()
    from qsafe._attest.nvml import load_nvml
    from qsafe.errors import QsafeError

    now = dt.datetime.now(dt.timezone.utc)
    try:
        nvml = load_nvml()
    except QsafeError as err:
        print(f"record_gpu_evidence: {err}", file=sys.stderr)
        return err.exit_code
    out = args.outdir or Path(f"gpu-evidence-{now.strftime('%Y%m%dT%H%M%SZ')}")
    out.mkdir(parents=True, exist_ok=False)
    state = nvml_state(nvml)
    (out / "nvml_state.json").write_text(json.dumps(state, indent=2, sort_keys=True, default=str) + "\n")
    files = [out / "nvml_state.json"]
    note = "CC mode is off (or unknown): no attestation report was requested"
    if state.get("cc_state", {}).get("ccFeature") == 1:
        try:
            files += record_report(nvml, args.gpu, out, now)
            note = f"one attestation report of GPU {args.gpu}, bound to a fresh random nonce (in the evidence file)"
        except Exception as exc:  # noqa: BLE001 - record the failure instead of a report
            note = f"CC mode on, but the report could not be recorded: {type(exc).__name__}: {exc}"
    write_provenance(out, files, state, now, note)
    print(f"recorded {len(files)} file(s) in {out}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
