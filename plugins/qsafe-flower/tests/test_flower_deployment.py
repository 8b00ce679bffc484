"""A real deployment on loopback: flower-superlink with TLS, three flower-supernode processes, the key authority
as its own process (mutual TLS), and `flwr run` of examples/flower_encrypted (encrypted, signed, blind Multi-Krum).
Then a second run in which a SuperNode is killed in the middle of a round. Every process is stopped at the end,
also when the test fails."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _deploy import BIN, Processes, free_port, make_certs

from qsafe.errors import AuditLogError
from qsafe.federated.audit import verify_audit_log
from qsafe.keys import PublicKey, load_public_key

APP = Path(__file__).resolve().parents[3] / "examples" / "flower_encrypted"
pytestmark = pytest.mark.slow


def _keys(work: Path, env: dict[str, str]) -> None:
    qsafe = str(BIN / "qsafe")
    subprocess.run([qsafe, "fl", "init", "--out", str(work / "keys"), "--scheme", "ckks", "--norm-keys",
                    "--no-passphrase"], check=True, env=env, capture_output=True)
    (work / "keys" / "clients").mkdir()
    for name in ("client0", "client1", "client2", "aggregator"):
        subprocess.run([qsafe, "keygen", "--out", str(work / "keys" / name), "--no-passphrase"], check=True, env=env,
                       capture_output=True)
    for i in range(3):
        (work / "keys" / f"client{i}.pub").rename(work / "keys" / "clients" / f"client{i}.pub")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Processes, dict[str, str]]]:
    work = tmp_path_factory.mktemp("deploy")
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", FLWR_HOME=str(work / "flwr"), PYTHONUNBUFFERED="1")
    make_certs(work / "certs")
    _keys(work, env)
    (work / "flwr").mkdir()
    (work / "flwr" / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{port}"\n'
        f'root-certificates = "{work}/certs/ca.pem"\n')
    procs = Processes(work / "logs", env)
    try:
        procs.start("key-authority", [str(BIN / "qsafe-flower-key-authority"), "--secret", str(work / "keys/secret.ctx"),
                                      "--clients", str(work / "keys/clients"), "--listen", "127.0.0.1:0",
                                      "--ready-file", str(work / "ka.addr"), "--certfile", str(work / "certs/ka.pem"),
                                      "--keyfile", str(work / "certs/ka.key"), "--client-ca",
                                      str(work / "certs/ca.pem")], work)
        procs.start("superlink", [str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(work / "certs/ca.pem"),
                                  "--ssl-certfile", str(work / "certs/superlink.pem"), "--ssl-keyfile",
                                  str(work / "certs/superlink.key"), "--port", str(port),
                                  "--disable-runtime-dependency-installation"], work)
        procs.wait_for("superlink", "Application startup complete", 90)
        procs.wait_for("key-authority", "listening on", 60)
        for i in range(3):
            config = (f"partition-id={i} num-partitions=3 qsafe-context='{work}/keys/public.ctx' "
                      f"qsafe-key='{work}/keys/client{i}.key'")
            procs.start(f"supernode{i}", [str(BIN / "flower-supernode"), "--root-certificates",
                                          str(work / "certs/ca.pem"), "--superlink", f"127.0.0.1:{port}",
                                          "--port", str(free_port()), "--node-config", config], work)
        for i in range(3):
            procs.wait_for(f"supernode{i}", "SuperNode ID", 90)
        yield work, procs, env
    finally:
        procs.stop_all()
        assert procs.alive() == [], "a process started by the test outlived it"


def _run(work: Path, env: dict[str, str], audit: str, **config: object) -> subprocess.CompletedProcess[str]:
    ka = (work / "ka.addr").read_text()
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in {"base-dir": str(work), "ka-address": ka,
                                                             "audit-log": audit, **config}.items())
    return subprocess.run([str(BIN / "flwr"), "run", str(APP), "local", "--stream", "-c", overrides], env=env,
                          check=False, capture_output=True, text=True, timeout=420, cwd=work)


def _rounds(log: Path, key: PublicKey) -> int:
    """Rounds of a log being written (a header alone is not yet a verifiable log)."""
    try:
        return verify_audit_log(log, key).rounds if log.exists() else 0
    except AuditLogError:
        return 0


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(900)
def test_encrypted_signed_multi_krum_run_and_a_supernode_killed_mid_round(
        deployment: tuple[Path, Processes, dict[str, str]]) -> None:
    work, procs, env = deployment
    key = load_public_key(work / "keys" / "aggregator.pub")
    # --- run 1: three rounds, blind Multi-Krum keeps 2 of 3 each round
    run = _run(work, env, "audit-krum.jsonl", **{"num-server-rounds": 2, "defense": "multi-krum", "krum-m": 2})
    assert "ServerApp raised an exception" not in run.stdout, run.stdout[-4000:]
    summary = verify_audit_log(work / "audit-krum.jsonl", key)
    assert summary.rounds == 2
    clients = [r for r in _records(work / "audit-krum.jsonl") if r["type"] == "client"]
    for rnd in (1, 2):
        decisions = sorted(str(r["decision"]) for r in clients if r["round"] == rnd)
        assert decisions == ["accepted", "accepted", "rejected"], clients
        assert all("blind krum score" in str(r["note"]) for r in clients if r["round"] == rnd)
    accuracy = [float(x) for x in re.findall(r"'accuracy': ([0-9.]+)", run.stdout)]
    assert len(accuracy) == 2 and accuracy[-1] > 0.9, run.stdout[-3000:]
    cli = subprocess.run([str(BIN / "qsafe"), "fl", "audit", "verify", str(work / "audit-krum.jsonl"), "--key",
                          str(work / "keys" / "aggregator.pub")], check=False, capture_output=True, text=True, env=env)
    assert cli.returncode == 0 and cli.stderr == ""

    # --- run 2: supernode2 sleeps in round 2 and is killed there; the round completes with the other two
    log = work / "audit-kill.jsonl"
    before = procs.log("supernode2").count("Receiving: train message")
    started = subprocess.Popen([str(BIN / "flwr"), "run", str(APP), "local", "-c", " ".join(
        f"{k}={json.dumps(v)}" for k, v in {"base-dir": str(work), "ka-address": (work / "ka.addr").read_text(),
                                            "audit-log": log.name, "num-server-rounds": 2, "defense": "none",
                                            "round-timeout": 25.0, "min-nodes": 2, "delay-partition": 2,
                                            "delay-round": 2, "delay-seconds": 600.0}.items())],
        env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert started.wait(timeout=120) == 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and _rounds(log, key) < 1:
        time.sleep(0.5)
    while time.monotonic() < deadline and procs.log("supernode2").count("Receiving: train message") < before + 2:
        time.sleep(0.2)
    assert procs.log("supernode2").count("Receiving: train message") == before + 2  # round 2's train message
    time.sleep(2)  # its ClientApp is now training round 2 (sleeping)
    procs.stop("supernode2", sig=signal.SIGKILL)
    while time.monotonic() < deadline and _rounds(log, key) < 2:
        time.sleep(1)
    summary = verify_audit_log(log, key)
    assert summary.rounds == 2
    round2 = [r for r in _records(log) if r["type"] == "client" and r["round"] == 2]
    assert sorted(str(r["decision"]) for r in round2) == ["accepted", "accepted", "no-reply"], round2
    heads = [r for r in _records(log) if r["type"] == "round-head"]
    assert heads[1]["aggregate_digest"] != "none"  # the two survivors were aggregated and decrypted

    # --- stop cleanly: SIGTERM, every process and child gone
    for name in ("supernode0", "supernode1", "superlink", "key-authority"):
        code = procs.stop(name)
        assert code is not None and code in (0, -signal.SIGTERM), (name, code, procs.log(name)[-2000:])
    assert procs.alive() == []
