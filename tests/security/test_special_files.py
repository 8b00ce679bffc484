"""Item 2: special files and the wrong kind of file. sign, verify and load open without blocking, check the kind
of file from the open descriptor, refuse dangling and looping symlinks and absurdly deep folders: a clear exit
code (2: refused input; 12: missing/extra file), never a hang, never exit 1, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qsafe import _limits
from qsafe.errors import InvalidInputError

from .conftest import leftovers, snapshot

SKIP = ["--unsafe-skip-attestation", "--framework", "numpy"]


def _qsafe(ws: Path, *args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess: a hang fails the test (TimeoutExpired) instead of hanging the suite."""
    return subprocess.run([sys.executable, "-m", "qsafe", *map(str, args)], cwd=ws, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "QSAFE_DEBUG": ""}, check=False)


def _all_three(ws: Path, *, sign_to: Path, cli=None) -> dict[str, tuple[int, str]]:  # type: ignore[no-untyped-def]
    """verify, load and sign of ws/model: (exit code, stderr) each; in a subprocess unless ``cli`` is given."""
    model = ws / "model"
    calls = {"verify": ["verify", model, "--key", ws / "signer.pub"],
             "load": ["load", model, "--key", ws / "signer.pub", *SKIP],
             "sign": ["sign", model, "--key", ws / "signer.key", "--signature", sign_to]}
    out = {}
    for name, args in calls.items():
        if cli is None:
            run = _qsafe(ws, *args)
            out[name] = (run.returncode, run.stderr)
        else:
            r = cli(args)
            out[name] = (r.exit_code, r.stderr)
    return out


@pytest.mark.parametrize("victim", ["model.safetensors", "config.json"])
def test_fifo_in_place_of_a_signed_file_never_hangs(ws: Path, victim: str) -> None:
    path = ws / "model" / victim
    path.unlink()
    os.mkfifo(path)
    before = snapshot(ws)
    runs = _all_three(ws, sign_to=ws / "new.sig")
    for name, (code, stderr) in runs.items():
        assert code == 2, (name, stderr)
        assert "FIFO" in stderr and "internal error" not in stderr
    assert snapshot(ws) == before and not (ws / "new.sig").exists() and not leftovers(ws)


def test_fifo_swapped_in_after_the_walk_is_refused_from_the_descriptor(tmp_path: Path) -> None:
    """The time-of-check gap: whatever the walk saw, the file opened is checked with fstat, without blocking."""
    from qsafe._hashing.engines import hash_range
    from qsafe._hashing.safetensors import digest_safetensors
    from qsafe._hashing.tensorload import read_verified_file

    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    calls = [lambda: hash_range(fifo, 0, 10, "sha256"), lambda: digest_safetensors(fifo, "sha256"),
             lambda: read_verified_file(fifo, None, file_digest="00")]
    for call in calls:
        errors: list[BaseException] = []

        def run(call=call, errors=errors) -> None:  # type: ignore[no-untyped-def]
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - inspected below
                errors.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "blocked opening a FIFO"
        assert len(errors) == 1 and isinstance(errors[0], InvalidInputError) and "FIFO" in str(errors[0])


def test_directory_in_place_of_a_signed_file(cli, ws: Path) -> None:
    (ws / "model" / "model.safetensors").unlink()
    (ws / "model" / "model.safetensors").mkdir()
    before = snapshot(ws)
    runs = _all_three(ws, sign_to=ws / "new.sig", cli=cli)
    assert runs["verify"][0] == runs["load"][0] == 12
    for name in ("verify", "load"):
        assert "missing: model.safetensors" in runs[name][1]
    assert runs["sign"][0] == 0  # an empty folder is not a file: the model simply has no weights now
    assert snapshot(ws) == {**before, "new.sig": snapshot(ws)["new.sig"]} and not leftovers(ws)


@pytest.mark.parametrize("kind", ["dangling", "looping"])
@pytest.mark.parametrize("where", ["model", "model/extra"])
def test_dangling_or_looping_safetensors_symlink(cli, ws: Path, kind: str, where: str) -> None:
    link = ws / where / "shard-2.safetensors"
    link.symlink_to(ws / "nowhere.safetensors" if kind == "dangling" else link)
    before = snapshot(ws)
    runs = _all_three(ws, sign_to=ws / "new.sig", cli=cli)
    for name, (code, stderr) in runs.items():
        assert code == 2, (name, stderr)
        assert "symlink" in stderr and "internal error" not in stderr
    # following symlinks does not help a link that leads nowhere
    r = cli(["sign", ws / "model", "--key", ws / "signer.key", "--signature", ws / "new.sig", "--allow-symlinks"])
    assert r.exit_code == 2 and "cannot be followed" in r.stderr, r.stderr[:300]
    assert snapshot(ws) == before and not (ws / "new.sig").exists()


def _nest(root: Path, levels: int) -> None:
    """Create root/d/d/.../d (``levels`` deep) and a .safetensors file at the bottom, without recursion."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("x.safetensors", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def _unnest(root: Path, levels: int) -> None:
    """Remove what :func:`_nest` made, without recursion (shutil.rmtree and pytest's cleanup recurse)."""
    fds = [os.open(root, os.O_RDONLY)]
    try:
        for _ in range(levels):
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        os.unlink("x.safetensors", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture()
def deep_ws(ws: Path):  # type: ignore[no-untyped-def]
    """A copy of the workspace outside pytest's tmp folders (pytest's own clean-up of old tmp folders recurses and
    would fail on 1,100 levels), with a .safetensors file 1,100 folders deep in the model; removed afterwards."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="qsafe-deep-"))
    try:
        shutil.copytree(ws / "model", root / "model")
        for name in ("signer.key", "signer.pub"):
            shutil.copy(ws / name, root / name)
        _nest(root / "model", 1100)
        yield root
    finally:
        if (root / "model" / "d").exists():
            _unnest(root / "model", 1100)
        shutil.rmtree(root)


def test_folder_1100_levels_deep(cli, deep_ws: Path) -> None:
    ws = deep_ws
    top = {p.name: p.read_bytes() for p in (ws / "model").iterdir() if p.is_file()}
    runs = _all_three(ws, sign_to=ws / "new.sig", cli=cli)
    for name, (code, stderr) in runs.items():
        assert code == 2, (name, stderr[-300:])
        assert f"more than {_limits.MODEL_MAX_DEPTH} folders deep" in stderr
    assert {p.name: p.read_bytes() for p in (ws / "model").iterdir() if p.is_file()} == top
    assert not (ws / "new.sig").exists()


def test_model_that_is_a_fifo_or_device(ws: Path) -> None:
    fifo = ws / "pipe.safetensors"
    os.mkfifo(fifo)
    for cmd in (["verify", fifo, "--key", ws / "signer.pub", "--signature", ws / "model" / "model.sig"],
                ["load", fifo, "--key", ws / "signer.pub", "--signature", ws / "model" / "model.sig", *SKIP],
                ["sign", fifo, "--key", ws / "signer.key", "--signature", ws / "new.sig"],
                ["sign", "/dev/null", "--key", ws / "signer.key", "--signature", ws / "new.sig"]):
        run = _qsafe(ws, *cmd)
        assert run.returncode == 2 and "internal error" not in run.stderr, (cmd[0], run.stderr)
    assert not (ws / "new.sig").exists()


def test_key_file_that_is_a_fifo_or_a_folder(ws: Path) -> None:
    fifo = ws / "pipe.pub"
    os.mkfifo(fifo)
    for key in (fifo, ws / "model"):
        run = _qsafe(ws, "verify", ws / "model", "--key", key, timeout=60)
        assert run.returncode == 4 and "internal error" not in run.stderr, run.stderr
