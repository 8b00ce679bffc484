"""The gate: signature first, then attestation, then one read of the verified bytes. Failures yield no tensors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from qsafe import keys
from qsafe.errors import (
    AttestationError,
    FormatError,
    InvalidInputError,
    ModelMismatchError,
    SignatureError,
    UnavailableError,
    UsageError,
)
from qsafe.loading import load_model
from qsafe.signing import sign

from .conftest import EVIDENCE, HOPPER_AT, HOPPER_NONCE, POLICIES

HOPPER = EVIDENCE / "hopper-h100.evidence.json"
DEV = POLICIES / "unsafe-development-replay.json"
HOPPER_POLICY = POLICIES / "nvidia-hopper-cc.json"


@pytest.fixture()
def signed(tmp_path: Path) -> tuple[Path, Path, keys.PrivateKey]:
    model = tmp_path / "model"
    model.mkdir()
    rng = np.random.default_rng(7)
    save_file({"a.weight": rng.standard_normal((8, 4)).astype(np.float32),
               "b.bias": np.arange(5, dtype=np.int64), "c.mask": np.array([True, False])},
              str(model / "model.safetensors"), metadata={"k": "v"})
    (model / "config.json").write_text("{}")
    key = keys.generate()
    sign(model, key)
    pub = tmp_path / "signer.pub"
    pub.write_bytes(key.public_key().to_pem())
    return model, pub, key


def test_gate_loads_verified_tensors(signed) -> None:
    model, pub, _ = signed
    loaded = load_model(model, model / "model.sig", pub, HOPPER_POLICY, evidence=HOPPER, nonce=HOPPER_NONCE,
                        at=HOPPER_AT, framework="numpy")
    reference = load_file(str(model / "model.safetensors"))
    assert set(loaded.tensors) == set(reference)
    for name, array in reference.items():
        assert np.array_equal(loaded.tensors[name], array) and loaded.tensors[name].dtype == array.dtype
    assert loaded.attestation.allowed and loaded.attestation.freshness["mode"] == "challenge"
    assert loaded.attestation.model_digest == loaded.model_digest
    assert loaded.tensor_files == ["model.safetensors"] and not loaded.attestation_skipped
    assert loaded.files == {"config.json": b"{}"} and loaded.verified_files == ["config.json", "model.safetensors"]


def test_gate_torch_tensors(signed) -> None:
    torch = pytest.importorskip("torch")  # torch is an extra; the numpy path above always runs
    model, pub, _ = signed
    loaded = load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, framework="torch", device="cpu")
    assert isinstance(loaded.tensors["a.weight"], torch.Tensor) and loaded.tensors["b.bias"].dtype == torch.int64
    assert loaded.attestation.freshness["replayedEvidenceAccepted"] is True


def test_signature_checked_before_attestation(signed, tmp_path: Path) -> None:
    model, _, _ = signed
    other = tmp_path / "other.pub"
    other.write_bytes(keys.generate().public_key().to_pem())
    with pytest.raises(SignatureError):
        load_model(model, model / "model.sig", other, HOPPER_POLICY, evidence=tmp_path / "does-not-exist.json")


def test_attestation_deny_loads_nothing(signed) -> None:
    model, pub, _ = signed
    with pytest.raises(AttestationError) as info:
        load_model(model, model / "model.sig", pub, POLICIES / "nvidia-blackwell-cc.json", evidence=HOPPER,
                   nonce=HOPPER_NONCE, at=HOPPER_AT)
    assert "gpu[0].arch" in info.value.failed_claims


def test_policy_and_evidence_required(signed) -> None:
    model, pub, _ = signed
    with pytest.raises(UsageError):
        load_model(model, model / "model.sig", pub, HOPPER_POLICY)
    with pytest.raises(UsageError):
        load_model(model, model / "model.sig", pub, HOPPER_POLICY, evidence=HOPPER, collect=True)
    with pytest.raises(UsageError, match="an attestation policy is required"):
        load_model(model, model / "model.sig", pub, None, evidence=HOPPER)
    skipped = load_model(model, model / "model.sig", pub, None, unsafe_skip_attestation=True, framework="numpy")
    assert skipped.attestation is None and skipped.attestation_skipped


def test_collect_without_gpu_is_unavailable(signed, no_gpu) -> None:
    model, pub, _ = signed
    with pytest.raises(UnavailableError):
        load_model(model, model / "model.sig", pub, HOPPER_POLICY, collect=["nvidia-gpu"])


def test_collect_from_device_ignoring_nonce_is_denied(signed) -> None:
    from .test_collectors import _fake_nvml

    model, pub, _ = signed
    item = json.loads(HOPPER.read_text())["items"][0]
    nvml = _fake_nvml(bytes.fromhex(item["report"]), item["cert_chain"].encode())
    with pytest.raises(AttestationError) as info:
        load_model(model, model / "model.sig", pub, HOPPER_POLICY, collect=["nvidia-gpu"],
                   collector_options={"nvidia-gpu": {"nvml": nvml}})
    assert info.value.failed_claims == ["gpu[0].freshness"]


def _tensor_offset(path: Path, name: str) -> int:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    return 8 + n + header[name]["data_offsets"][0]


def test_tampered_tensor_named(signed) -> None:
    model, pub, _ = signed
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[_tensor_offset(weights, "b.bias")] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError) as info:
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER)
    assert info.value.changed_tensors == {"model.safetensors": ["b.bias"]}


def test_tampered_header_metadata(signed) -> None:
    model, pub, _ = signed
    weights = model / "model.safetensors"
    data = weights.read_bytes().replace(b'"k":"v"', b'"k":"w"')
    weights.write_bytes(data)
    with pytest.raises(ModelMismatchError, match="header"):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER)


def test_truncated_or_oversized_header(signed) -> None:
    model, pub, _ = signed
    weights = model / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 1 << 40) + raw[8:])
    with pytest.raises(FormatError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER)
    weights.write_bytes(raw[:-3])
    with pytest.raises(FormatError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER)


def test_change_between_attestation_and_load_is_caught(signed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model is swapped after the signature and evidence were checked: the single read still catches it."""
    from qsafe import loading

    model, pub, _ = signed
    real = loading._attest

    def attest_then_tamper(*args, **kwargs):
        result = real(*args, **kwargs)
        weights = model / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0x40
        weights.write_bytes(bytes(data))
        return result

    monkeypatch.setattr(loading, "_attest", attest_then_tamper)
    with pytest.raises(ModelMismatchError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, framework="numpy")


def test_symlinked_weights_refused(signed, tmp_path: Path) -> None:
    model, pub, _ = signed
    weights = model / "model.safetensors"
    moved = tmp_path / "elsewhere.safetensors"
    weights.rename(moved)
    weights.symlink_to(moved)
    with pytest.raises(InvalidInputError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, framework="numpy")


def test_cli_load(cli, signed, no_gpu) -> None:
    model, pub, _ = signed
    r = cli(["load", model, "--key", pub, "--policy", HOPPER_POLICY, "--evidence", HOPPER,
             "--nonce", HOPPER_NONCE.hex(), "--at", "2024-05-01T00:01:00Z", "--framework", "numpy"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli(["load", model, "--key", pub, "--unsafe-skip-attestation", "--framework", "numpy", "--json"])
    assert r.exit_code == 0 and "WARNING: --unsafe-skip-attestation" in r.stderr
    assert json.loads(r.stdout)["attestationSkipped"] is True
    r = cli(["load", model, "--key", pub, "--policy", DEV, "--evidence", HOPPER, "--framework", "numpy"])
    assert r.exit_code == 0 and "accepted replayed evidence" in r.stderr
    r = cli(["load", model, "--key", pub, "--evidence", HOPPER])
    assert r.exit_code == 2 and "--policy is required" in r.stderr
    r = cli(["load", model, "--key", pub, "--policy", HOPPER_POLICY, "--evidence", HOPPER])
    assert r.exit_code == 15 and "gpu[0].freshness" in r.stderr
    r = cli(["load", model, "--key", pub, "--policy", HOPPER_POLICY, "--collect"])
    assert r.exit_code == 6 and r.stdout == ""


def test_cli_load_writes_signed_results(cli, signed, tmp_path: Path) -> None:
    from qsafe.attestation import verify_result

    model, pub, _ = signed
    appraiser = keys.generate()
    (tmp_path / "a.key").write_bytes(appraiser.to_pem())
    ok, deny = tmp_path / "ok.json", tmp_path / "deny.json"
    r = cli(["load", model, "--key", pub, "--policy", HOPPER_POLICY, "--evidence", HOPPER, "--nonce",
             HOPPER_NONCE.hex(), "--at", "2024-05-01T00:01:00Z", "--framework", "numpy", "--result", ok,
             "--result-key", tmp_path / "a.key"])
    assert (r.exit_code, r.stderr) == (0, "")
    statement = verify_result(ok.read_bytes(), [appraiser.public_key()])
    names = [s["name"] for s in statement["subject"]]
    assert names == ["evidence", "model"] and statement["predicate"]["verdict"] == "allow"
    r = cli(["load", model, "--key", pub, "--policy", HOPPER_POLICY, "--evidence", HOPPER, "--framework", "numpy",
             "--result", deny, "--result-key", tmp_path / "a.key"])
    assert r.exit_code == 15
    assert verify_result(deny.read_bytes(), [appraiser.public_key()])["predicate"]["verdict"] == "deny"
    r = cli(["load", model, "--key", pub, "--unsafe-skip-attestation", "--result", deny, "--result-key", tmp_path / "a.key"])
    assert r.exit_code == 2


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b"])
def test_manifest_without_tensor_digests_uses_the_file_digest_in_the_same_read(tmp_path: Path, algorithm: str) -> None:
    from qsafe.hashing import HashingConfig

    model = tmp_path / "m"
    model.mkdir()
    save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(model / "model.safetensors"))
    key = keys.generate()
    sign(model, key, config=HashingConfig(algorithm=algorithm, tensor_digests=False))
    loaded = load_model(model, model / "model.sig", [key.public_key()], DEV, evidence=HOPPER, framework="numpy")
    assert np.array_equal(loaded.tensors["w"], np.arange(12, dtype=np.float32).reshape(3, 4))
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError, match="changed: model.safetensors"):
        load_model(model, model / "model.sig", [key.public_key()], DEV, evidence=HOPPER, framework="numpy")


def test_shards_manifest_without_tensor_digests_cannot_be_gated(tmp_path: Path) -> None:
    from qsafe.hashing import HashingConfig

    model = tmp_path / "m"
    model.mkdir()
    save_file({"w": np.zeros(8, dtype=np.float32)}, str(model / "model.safetensors"))
    key = keys.generate()
    sign(model, key, config=HashingConfig(method="shards", shard_size=16, tensor_digests=False))
    with pytest.raises(FormatError, match="checked while loading"):
        load_model(model, model / "model.sig", [key.public_key()], DEV, evidence=HOPPER, framework="numpy")


def test_absent_cuda_device_is_unavailable_before_reading(signed, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, pub, _ = signed
    with pytest.raises(UnavailableError, match="cuda:0"):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, device="cuda:0")
    with pytest.raises(UsageError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, device="cuda:0", framework="numpy")
    with pytest.raises(UsageError):
        load_model(model, model / "model.sig", pub, DEV, evidence=HOPPER, device="no-such-device")
