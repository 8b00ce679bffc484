"""The entry-point registries: built-ins come through the same groups as plugins, the generic loader imports no
capability, a plugin is one module plus one entry point, and a missing plugin is exit 5 naming it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib

from qsafe import keys, plugins, signers
from qsafe.attestation import verifiers
from qsafe.errors import KeyFileError, MissingDependencyError, UsageError
from qsafe.federated import defenses

REPO = Path(__file__).resolve().parents[2]


def _declared(group: str) -> dict[str, str]:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(doc["project"]["entry-points"][group])


@pytest.mark.parametrize("group", plugins.GROUPS)
def test_builtins_are_exactly_the_pyproject_entries(group: str) -> None:
    builtins = plugins.registry(group).builtins()
    assert {n: p.target for n, p in builtins.items()} == _declared(group)
    assert all(p.builtin and p.distribution == "qsafe" for p in builtins.values())
    # every built-in loads, and what it loads is what its capability expects
    loaded = {name: plugins.registry(group).load(name) for name in builtins}
    assert len(loaded) == len(builtins) >= 4


def test_builtins_satisfy_their_interfaces() -> None:
    for name in plugins.registry(plugins.SIGNERS_GROUP).builtins():
        scheme = signers.scheme(name)
        assert isinstance(scheme, signers.SignatureScheme) and scheme.name == name
    assert set(verifiers.verifiers()) >= {"nvidia-gpu", "nvidia-cc", "sev-snp", "tdx", "software"}
    assert {v.prefix for v in verifiers.verifiers().values()} >= {"gpu", "nvml", "snp", "tdx", "sw"}
    assert defenses.defense_names()[: len(defenses.DEFENSES)] == list(defenses.DEFENSES)
    assert all(issubclass(defenses.load_defense(n), defenses.Strategy) for n in defenses.DEFENSES)


def test_generic_loader_imports_no_capability() -> None:
    code = ("import sys, qsafe.plugins; bad = sorted(m for m in sys.modules if m.startswith('qsafe.') and m not in "
            "('qsafe.plugins', 'qsafe.errors')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import ast

    tree = ast.parse((REPO / "qsafe" / "plugins.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m and m.startswith("qsafe")} == {"qsafe.errors"}


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(KeyFileError, match="unknown signature algorithm 'rsa-2048'"):
        keys.generate("rsa-2048")
    with pytest.raises(UsageError, match="unknown defense 'magic'"):
        defenses.make_strategy("magic")
    with pytest.raises(UsageError, match="no evidence verifier named 'tpm'"):
        plugins.registry(plugins.VERIFIERS_GROUP).get("tpm")
    with pytest.raises(KeyFileError, match="verify-only"):
        keys.generate("ecdsa-p384")


@pytest.fixture()
def builtins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registries as on a machine where no plugin is installed (plugins are hidden, built-ins stay)."""
    monkeypatch.setattr(plugins.Registry, "_scan", lambda self: {})
    for group in plugins.GROUPS:
        plugins.registry(group).refresh()
    yield
    monkeypatch.undo()
    for group in plugins.GROUPS:
        plugins.registry(group).refresh()


def _slh_spki() -> bytes:
    return signers.encode_spki("2.16.840.1.101.3.4.3.20", bytes(range(32)))


@pytest.mark.usefixtures("builtins_only")
def test_missing_plugin_key_is_exit_5_naming_it(cli: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="slh-dsa-sha2-128s needs the plugin qsafe-liboqs") as info:
        keys.public_key_from_der(_slh_spki())
    assert info.value.exit_code == 5 and "pip install ./plugins/qsafe-liboqs" in info.value.hint
    pub = tmp_path / "slh.pub"
    pub.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + __import__("base64").encodebytes(_slh_spki())
                    + b"-----END PUBLIC KEY-----\n")
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    result = cli(["verify", model, "--signature", tmp_path / "none.sig", "--key", pub])
    assert result.exit_code in (3, 5)  # the missing signature file may be read first: either way nothing verified
    result = cli(["keygen", "--alg", "falcon-512", "--out", tmp_path / "k", "--no-passphrase"])
    assert result.exit_code == 5 and "falcon-512 needs the plugin qsafe-liboqs" in result.stderr
    assert not (tmp_path / "k.key").exists()
    result = cli(["keygen", "--alg", "rsa-1024", "--out", tmp_path / "k", "--no-passphrase"])
    assert result.exit_code == 2 and "rsa-1024" in result.stderr
    with pytest.raises(MissingDependencyError, match="falcon-512 needs the plugin qsafe-liboqs"):
        keys.generate("falcon-512")


@pytest.mark.usefixtures("builtins_only")
def test_bundle_from_missing_plugin_is_exit_5(cli: Callable[..., Any], tmp_path: Path) -> None:
    key = keys.generate("ml-dsa-65")
    keys.write_key_pair(key, tmp_path / "k", None)
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    assert cli(["sign", model, "--key", tmp_path / "k.key"]).exit_code == 0
    sig = tmp_path / "model.sig"
    doc = json.loads(sig.read_text())
    doc["verificationMaterial"]["publicKey"]["keyDetails"] = "QSAFE_SLH_DSA_SHA2_128S"
    sig.write_text(json.dumps(doc))
    result = cli(["verify", model, "--key", tmp_path / "k.pub"])
    assert result.exit_code == 5
    assert "needs the plugin qsafe-liboqs" in result.stderr and "pip install ./plugins/qsafe-liboqs" in result.stderr


def test_keygen_help_lists_installed_algorithms(cli: Callable[..., Any]) -> None:
    result = cli(["keygen", "--help"])
    assert result.exit_code == 0
    flat = "".join(result.stdout.split())  # help lines may wrap inside a name
    for name in keys.signature_algorithms():
        assert name in flat
    assert "ecdsa-p384" not in keys.signature_algorithms()


_PLUGIN = '''
"""A toy third-party plugin: one defense, one verifier, one signer (tests only)."""
import numpy as np
from qsafe.attestation.verifiers import Outcome
from qsafe.federated.defenses.base import ACCEPTED, AggregateResult, ClientDecision, Strategy, stack


class CoordinateMax(Strategy):
    name = "toy-max"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def aggregate(self, server_round, updates, rng):
        m = stack(updates)
        return AggregateResult((m.mean(axis=0) * self.scale).astype(np.float32),
                               tuple(ClientDecision(u.client, ACCEPTED, 1 / len(updates)) for u in updates))


class ToyTpm:
    kind, prefix, signed = "toy-tpm", "tpm", False
    proves = "nothing: a test verifier"

    def verify(self, item, at, expected):
        return Outcome(claims={"pcr0": item.get("pcr0")}, passed=["toy"])

    def freshness_value(self, claims):
        return None


TOY_TPM = ToyTpm()
'''


def test_a_plugin_is_one_module_plus_entry_points(tmp_path: Path) -> None:
    """Install-free: a dist-info folder on sys.path registers the module's entry points, as pip would."""
    (tmp_path / "toy_plugin.py").write_text(_PLUGIN)
    info = tmp_path / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[qsafe.defenses]\ntoy-max = toy_plugin:CoordinateMax\n\n[qsafe.verifiers]\ntoy-tpm = toy_plugin:TOY_TPM\n\n"
        "[qsafe.signers]\nml-dsa-65 = toy_plugin:CoordinateMax\n")
    code = textwrap.dedent("""
        import datetime as dt, json
        from qsafe import plugins
        from qsafe.federated.defenses import defense_names, defense_parameters, make_strategy
        from qsafe.attestation import Evidence, appraise, policy_from_json
        out = {"defenses": defense_names(), "params": defense_parameters("toy-max"),
               "strategy": type(make_strategy("toy-max", scale=2.0)).__name__,
               "shadowed": [(p.name, p.distribution) for p in plugins.registry("qsafe.signers").shadowed()]}
        from qsafe import keys
        out["ml-dsa-65 still built-in"] = keys.generate("ml-dsa-65").algorithm
        policy = policy_from_json({"format": "qsafe-attestation-policy/v1", "name": "toy",
            "freshness": {"accept": ["unsafe-accept-replay"]}, "require": ["toy-tpm"],
            "claims": {"tpm.pcr0": {"equals": "aa"}}})
        ev = Evidence(collected_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), nonce=None,
                      items=[{"kind": "toy-tpm", "pcr0": "aa"}])
        res = appraise(Evidence.from_json(ev.to_json()), policy, at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        out["verdict"], out["failed"] = res.verdict, res.failed
        print(json.dumps(out))
    """)
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["defenses"][-1] == "toy-max" and out["defenses"][:-1] == list(defenses.DEFENSES)[: len(out["defenses"]) - 1]
    assert out["params"] == {"scale": 1.0} and out["strategy"] == "CoordinateMax"
    assert out["shadowed"] == [["ml-dsa-65", "toy-plugin"]] and out["ml-dsa-65 still built-in"] == "ml-dsa-65"
    assert (out["verdict"], out["failed"]) == ("allow", [])


def test_policy_kinds_and_prefixes_come_from_the_registry() -> None:
    from qsafe.attestation import policy_from_json
    from qsafe.errors import FormatError

    base = {"format": "qsafe-attestation-policy/v1", "name": "p", "freshness": {"accept": ["binding"]},
            "require": ["nvidia-gpu"], "claims": {"gpu.arch": {"equals": "HOPPER"}}}
    assert policy_from_json(base).require == ["nvidia-gpu"]
    with pytest.raises(FormatError, match="no installed verifier reads evidence kind 'tpm'"):
        policy_from_json({**base, "require": ["tpm"]})
    with pytest.raises(FormatError, match="unknown claim prefix 'pcr'"):
        policy_from_json({**base, "claims": {"pcr.0": {"equals": "x"}}})


def test_defense_param_option(cli: Callable[..., Any]) -> None:
    from qsafe.cli.federated_sim import _defense_params

    opts = {"norm_bound": None, "krum_f": 4, "trim_beta": 0.2, "clip_norm": 0.5, "noise_multiplier": 0.1,
            "flame_lambda": 0.001}
    assert _defense_params("krum", {**opts, "defense_params": ("krum.f=2",)}) == {"f": 2}
    assert _defense_params("multi-krum", {**opts, "defense_params": ("m=3",)}) == {"f": 4, "m": 3}
    assert _defense_params("median", {**opts, "defense_params": ("krum.f=2",)}) == {}
    with pytest.raises(UsageError, match="not a valid int"):
        _defense_params("krum", {**opts, "defense_params": ("krum.f=two",)})
    for bad, message in (("krum.beta=1", "no chosen defense takes 'beta'"), ("nope=1", "no chosen defense takes"),
                         ("magic.f=1", "unknown defense 'magic'"), ("f", "expected DEFENSE.KEY=VALUE")):
        result = cli(["fl", "simulate", "--defense", "krum", "--defense-param", bad, "--rounds", "1"])
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_attest_verifiers_lists_the_registry(cli: Callable[..., Any]) -> None:
    result = cli(["attest", "verifiers", "--json"])
    assert (result.exit_code, result.stderr) == (0, "")
    rows = {r["kind"]: r for r in json.loads(result.stdout)}
    assert set(rows) >= {"nvidia-gpu", "nvidia-cc", "sev-snp", "tdx", "software"}
    assert rows["nvidia-gpu"]["prefix"] == "gpu" and rows["nvidia-gpu"]["signed"] is True
    assert rows["software"]["signed"] is False and rows["tdx"]["from"] == "qsafe"
    text = cli(["attest", "verifiers"])
    assert text.exit_code == 0 and "sev-snp" in text.stdout and "snp.*" in text.stdout


def test_verifying_a_builtin_bundle_loads_no_plugin(tmp_path: Path) -> None:
    """The built-in fast path: an ML-DSA key and bundle are resolved from qsafe's own entries, so no installed
    plugin module is imported (and no other distribution's metadata is scanned) on `qsafe verify`."""
    key = keys.generate("ml-dsa-65")
    keys.write_key_pair(key, tmp_path / "k", None)
    (tmp_path / "m.bin").write_bytes(b"weights")
    code = textwrap.dedent(f"""
        import sys
        from importlib import metadata
        from qsafe.cli import main
        scans = []
        real = metadata.entry_points
        metadata.entry_points = lambda **kw: scans.append(kw) or real(**kw)
        for args in (["sign", {str(tmp_path / "m.bin")!r}, "--key", {str(tmp_path / "k.key")!r}],
                     ["verify", {str(tmp_path / "m.bin")!r}, "--key", {str(tmp_path / "k.pub")!r}]):
            try:
                main(args)
            except SystemExit as e:
                assert e.code == 0, e.code
        plugin_modules = sorted(m for m in sys.modules if m.startswith(("qsafe_", "toy_")))
        print("PLUGINS", plugin_modules, "SCANS", len(scans))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "PLUGINS [] SCANS 0" in proc.stdout
