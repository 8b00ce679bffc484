"""Shipped policies by name and recorded evidence (issue 13 item 1/2/3): transcripts of what a user types."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from qsafe.attestation import load_evidence, load_policy, shipped
from qsafe.errors import UsageError

HOPPER_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
REPO = Path(__file__).resolve().parents[2]


def test_policies_by_name_are_the_files_in_the_package() -> None:
    assert shipped.policy_names() == ["amd-sev-snp", "intel-tdx", "nvidia-blackwell-cc", "nvidia-hopper-cc",
                                      "unsafe-development-replay"]
    by_name = load_policy("nvidia-hopper-cc")
    by_path = load_policy(REPO / "attestations" / "policies" / "nvidia-hopper-cc.json")
    assert by_name.name == "nvidia-hopper-cc" and by_name.digest == by_path.digest
    assert shipped.policy_path("intel-tdx").parent == Path(shipped.__file__).resolve().parent / "data" / "policies"


@pytest.mark.parametrize("value", ["nvidia-hopper", "./nvidia-hopper-cc", "nvidia-hopper-cc.json", "x/nvidia-hopper-cc"])
def test_a_name_is_never_confused_with_a_path(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a bare word is a name; a file in the cwd cannot stand in for a shipped policy, nor the reverse."""
    monkeypatch.chdir(tmp_path)
    if shipped.is_policy_name(value):
        with pytest.raises(UsageError, match="no shipped attestation policy is named 'nvidia-hopper'") as err:
            load_policy(value)
        assert "nvidia-hopper-cc" in (err.value.hint or "")
    else:
        assert shipped.resolve_policy(value) == Path(value)


def test_every_recorded_evidence_carries_its_nonce_and_passes_its_policy() -> None:
    from qsafe.attestation import appraise

    for item in shipped.recorded_evidence():
        evidence = load_evidence(item.path)
        assert evidence.nonce is not None and evidence.nonce.hex() == item.nonce
        result = appraise(evidence, load_policy(item.policy), at=item.at, nonce=evidence.nonce)
        assert result.allowed, (item.name, result.failed)
        assert result.freshness["mode"] == "challenge"
    assert shipped.recorded("hopper-h100").nonce == HOPPER_NONCE


def test_attest_policies_lists_and_prints(cli: Callable[..., object]) -> None:
    listed = cli(["attest", "policies"])
    assert listed.exit_code == 0, listed.stderr  # type: ignore[attr-defined]
    lines = listed.stdout.splitlines()  # type: ignore[attr-defined]
    assert [ln.split()[0] for ln in lines[:5]] == shipped.policy_names()
    assert "requires nvidia-gpu; NVIDIA Hopper" in lines[3]
    as_json = json.loads(cli(["attest", "policies", "--json"]).stdout)  # type: ignore[attr-defined]
    assert {p["name"] for p in as_json} == set(shipped.policy_names())
    one = cli(["attest", "policies", "nvidia-hopper-cc"])
    assert json.loads(one.stdout)["name"] == "nvidia-hopper-cc"  # type: ignore[attr-defined]
    bad = cli(["attest", "policies", "hopper"])
    assert bad.exit_code == 2 and "no shipped attestation policy is named 'hopper'" in bad.stderr  # type: ignore[attr-defined]


def test_attest_recorded_prints_the_whole_nonce_and_a_command_that_works(cli: Callable[..., object], tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    listed = cli(["attest", "recorded"])
    out = listed.stdout  # type: ignore[attr-defined]
    assert f"  nonce {HOPPER_NONCE}\n" in out
    verify_line = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("qsafe attest verify hopper-h100"))
    monkeypatch.chdir(tmp_path)
    wrote = cli(["attest", "recorded", "hopper-h100", "-o", "hopper-h100.json"])
    assert wrote.exit_code == 0 and wrote.stdout == ""  # type: ignore[attr-defined]
    ran = cli(verify_line.split()[1:])  # exactly the printed command
    assert ran.exit_code == 0 and ran.stderr == "", ran.stderr  # type: ignore[attr-defined]
    assert cli(["attest", "recorded", "nosuch"]).exit_code == 2  # type: ignore[attr-defined]
    assert cli(["attest", "recorded", "-o", "x.json"]).exit_code == 2  # type: ignore[attr-defined]


def test_policy_option_takes_a_name_and_names_the_choices(cli: Callable[..., object], tmp_path: Path) -> None:
    evidence = shipped.recorded("hopper-h100").path
    ok = cli(["attest", "verify", evidence, "--policy", "nvidia-hopper-cc", "--nonce", HOPPER_NONCE,
              "--at", "2024-05-01T00:01:00Z"])
    assert ok.exit_code == 0 and ok.stderr == ""  # type: ignore[attr-defined]
    typo = cli(["attest", "verify", evidence, "--policy", "nvidia-hoper-cc"])
    assert typo.exit_code == 2  # type: ignore[attr-defined]
    assert "no shipped policy is named 'nvidia-hoper-cc'" in typo.stderr and "nvidia-hopper-cc" in typo.stderr  # type: ignore[attr-defined]
    missing = cli(["attest", "verify", evidence, "--policy", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr  # type: ignore[attr-defined]


def test_deny_prints_the_whole_nonce_and_a_hint_without_a_model(cli: Callable[..., object]) -> None:
    """`attest verify` involves no model: its hint must not say 'the model was not loaded' (issue 13 item 3)."""
    denied = cli(["attest", "verify", shipped.recorded("hopper-h100").path, "--policy", "nvidia-hopper-cc",
                  "--at", "2024-05-01T00:01:00Z"])
    assert denied.exit_code == 15  # type: ignore[attr-defined]
    assert f"evidence nonce/report data {HOPPER_NONCE} is not fresh" in denied.stderr  # type: ignore[attr-defined]
    assert "model" not in denied.stderr.split("qsafe: hint:")[1]  # type: ignore[attr-defined]


def test_collect_hint_fits_collect(cli: Callable[..., object], no_gpu: None, tmp_path: Path) -> None:
    """`attest collect` has no --evidence option: its hint must not suggest one (issue 13 item 3)."""
    res = cli(["attest", "collect", "-c", "nvidia-gpu", "-o", tmp_path / "e.json"])
    assert res.exit_code == 6  # type: ignore[attr-defined]
    hint = res.stderr.split("qsafe: hint:")[1]  # type: ignore[attr-defined]
    assert "--evidence" not in hint and "-c software" in hint and "qsafe attest recorded" in hint


def test_load_hints_name_the_model_and_the_recorded_alternative(cli: Callable[..., object], no_gpu: None,
                                                               signed_model: Path,
                                                               release_keys: tuple[Path, Path]) -> None:
    pub = release_keys[1]
    collect = cli(["load", signed_model, "--key", pub, "--policy", "nvidia-hopper-cc", "--collect",
                   "--framework", "numpy"])
    assert collect.exit_code == 6  # type: ignore[attr-defined]
    assert "--evidence FILE --nonce N" in collect.stderr and "qsafe attest recorded" in collect.stderr  # type: ignore[attr-defined]
    denied = cli(["load", signed_model, "--key", pub, "--policy", "nvidia-blackwell-cc", "--framework", "numpy",
                  "--evidence", shipped.recorded("hopper-h100").path, "--nonce", HOPPER_NONCE,
                  "--at", "2024-05-01T00:01:00Z"])
    assert denied.exit_code == 15 and "the model was not loaded" in denied.stderr  # type: ignore[attr-defined]
    loaded = cli(["load", signed_model, "--key", pub, "--policy", "nvidia-hopper-cc", "--framework", "numpy",
                  "--evidence", shipped.recorded("hopper-h100").path, "--nonce", HOPPER_NONCE,
                  "--at", "2024-05-01T00:01:00Z"])
    assert loaded.exit_code == 0 and loaded.stdout == "" and loaded.stderr == ""  # type: ignore[attr-defined]
