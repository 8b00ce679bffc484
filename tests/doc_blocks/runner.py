"""Run the command blocks of the documentation verbatim (the convention is in tests/doc_blocks/README.md).

Every fenced ```sh block of README.md, docs/*.md and examples/**/README.md runs in a temporary directory, one
directory per document, blocks in order; a ```python block runs when a ``<!-- doctest: … -->`` directive marks
it. A directive on the nearest non-blank line before a fence declares setups, the expected exit status, expected
output, a timeout, ``slow`` or ``skip reason="…"``.

Used by tests/doc_blocks/test_doc_blocks.py (and the wheel test); also a command:

    python tests/doc_blocks/runner.py --list              # every block, run/slow/skip, with reasons
    python tests/doc_blocks/runner.py docs/signing.md     # run one document, printing each block's output
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGS = frozenset({"sh", "bash", "shell"})
PYTHON_LANGS = frozenset({"python", "py", "python3"})
DEFAULT_TIMEOUT = 60.0
PASSPHRASE = "doctest-passphrase"
# Documents whose every ```python block must be run (the API page's examples are its tests).
ALL_PYTHON_RUN = frozenset({"docs/api.md"})

_FENCE = re.compile(r"^(?P<indent> {0,3}|\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doctest:(?P<body>.*?)-->\s*$")
_DIRECTIVE_START = re.compile(r"<!--\s*doctest\b")
_KEYS = frozenset({"setup", "exit", "expect", "timeout", "slow", "skip", "reason", "run"})


def _setups() -> dict[str, Any]:
    """The setup registry (tests/doc_blocks/setups.py), imported as a package module or beside the script."""
    try:
        from . import setups
    except ImportError:  # run as a script: this folder is sys.path[0]
        import setups  # type: ignore[no-redef]
    return setups.SETUPS


class DocSyntaxError(ValueError):
    """A malformed directive or block; the message names file:line."""


@dataclass(frozen=True)
class Block:
    """One runnable (or declared-skipped) code block."""

    doc: str                     # path relative to the repository, POSIX
    line: int                    # 1-based line of the opening fence
    lang: str                    # "sh" or "python"
    code: str
    setups: tuple[str, ...] = ()
    exit: int = 0
    expect: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    slow: bool = False
    skip: str | None = None      # the reason, when skipped

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def documents(repo: Path = REPO) -> list[Path]:
    """The documents whose blocks run: README.md, docs/*.md, examples/**/README.md."""
    found = [repo / "README.md", *sorted((repo / "docs").glob("*.md")), *sorted((repo / "examples").rglob("README.md"))]
    return [p for p in found if p.is_file()]


def _parse_directive(body: str, where: str) -> dict[str, object]:
    try:
        words = shlex.split(body)
    except ValueError as exc:
        raise DocSyntaxError(f"{where}: directive does not parse: {exc}") from exc
    out: dict[str, object] = {"expect": []}
    for word in words:
        key, sep, value = word.partition("=")
        if key not in _KEYS:
            raise DocSyntaxError(f"{where}: unknown doctest key {key!r} (known: {', '.join(sorted(_KEYS))})")
        if key in ("slow", "skip", "run"):
            if sep:
                raise DocSyntaxError(f"{where}: {key} takes no value (use skip reason=\"…\")")
            out[key] = True
            continue
        if not sep or value == "":
            raise DocSyntaxError(f"{where}: {key} needs a value ({key}=…)")
        if key == "expect":
            out["expect"].append(value)  # type: ignore[union-attr]
        elif key in out:
            raise DocSyntaxError(f"{where}: {key} given twice")
        elif key == "exit":
            if not value.isdigit() or int(value) > 255:
                raise DocSyntaxError(f"{where}: exit must be 0-255, not {value!r}")
            out[key] = int(value)
        elif key == "timeout":
            try:
                out[key] = float(value)
            except ValueError:
                raise DocSyntaxError(f"{where}: timeout must be seconds, not {value!r}") from None
            if not 0 < out[key] <= 3600:  # type: ignore[operator]
                raise DocSyntaxError(f"{where}: timeout must be in (0, 3600] seconds")
        elif key == "setup":
            names = tuple(n for n in value.split(",") if n)
            out[key] = names
        else:
            out[key] = value
    if out.get("skip") and not str(out.get("reason", "")).strip():
        raise DocSyntaxError(f'{where}: skip needs a reason: <!-- doctest: skip reason="…" -->')
    if "reason" in out and not out.get("skip"):
        raise DocSyntaxError(f"{where}: reason= belongs to skip")
    return out


def parse(text: str, doc: str) -> list[Block]:
    """The blocks of one document that run or are declared skipped; raises DocSyntaxError."""
    setups = _setups()
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[int, dict[str, object]] | None = None  # (line, directive) waiting for its fence
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _DIRECTIVE.match(line)
        if match:
            if pending is not None:
                raise DocSyntaxError(f"{doc}:{pending[0]}: directive not followed by a code block")
            pending = (i + 1, _parse_directive(match.group("body"), f"{doc}:{i + 1}"))
            i += 1
            continue
        if _DIRECTIVE_START.search(line):
            raise DocSyntaxError(f"{doc}:{i + 1}: a doctest directive must be alone on its line: <!-- doctest: … -->")
        fence = _FENCE.match(line)
        if not fence:
            if line.strip() and pending is not None:
                raise DocSyntaxError(f"{doc}:{pending[0]}: directive not followed by a code block")
            i += 1
            continue
        indent, marker, info = len(fence.group("indent")), fence.group("fence"), fence.group("info").strip()
        start = i + 1
        body: list[str] = []
        i += 1
        closing = re.compile(r"^\s*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}\s*$")
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i].lstrip())
            i += 1
        if i >= len(lines):
            raise DocSyntaxError(f"{doc}:{start}: code block is never closed")
        i += 1  # past the closing fence
        lang = info.split()[0].lower() if info else ""
        directive, pending = (pending[1] if pending else None), None
        where = f"{doc}:{start}"
        if lang in SHELL_LANGS:
            kind = "sh"
            for n, text_line in enumerate(body):
                if text_line.startswith("$ "):
                    raise DocSyntaxError(f"{doc}:{start + 1 + n}: a ```sh block holds commands, not a `$ ` "
                                         "transcript: use ```console for command + output")
        elif lang in PYTHON_LANGS:
            kind = "python"
            if directive is None:
                if doc in ALL_PYTHON_RUN:
                    raise DocSyntaxError(f"{where}: every python block of {doc} runs: give it a doctest "
                                         "directive (e.g. <!-- doctest: setup=model -->)")
                continue  # illustrative python: not run
        else:
            if directive is not None:
                raise DocSyntaxError(f"{where}: a doctest directive before a ```{lang or '(plain)'} block, "
                                     "which never runs (only sh and python blocks run)")
            continue
        d = directive or {"expect": []}
        unknown = [s for s in d.get("setup", ()) if s not in setups]  # type: ignore[attr-defined]
        if unknown:
            raise DocSyntaxError(f"{where}: unknown setup {', '.join(unknown)} (known: {', '.join(sorted(setups))};"
                                 " add yours to tests/doc_blocks/setups.py)")
        if not "".join(body).strip():
            raise DocSyntaxError(f"{where}: empty ```{lang} block")
        blocks.append(Block(
            doc=doc, line=start, lang=kind, code="\n".join(body) + "\n",
            setups=tuple(d.get("setup", ())),  # type: ignore[arg-type]
            exit=int(d.get("exit", 0)),  # type: ignore[call-overload]
            expect=tuple(d["expect"]),  # type: ignore[arg-type]
            timeout=float(d.get("timeout", DEFAULT_TIMEOUT)),  # type: ignore[arg-type]
            slow=bool(d.get("slow", False)),
            skip=str(d["reason"]) if d.get("skip") else None,
        ))
    if pending is not None:
        raise DocSyntaxError(f"{doc}:{pending[0]}: directive not followed by a code block")
    return blocks


def parse_file(path: Path, repo: Path = REPO) -> list[Block]:
    return parse(path.read_text(encoding="utf-8"), path.resolve().relative_to(repo.resolve()).as_posix())


@dataclass
class Outcome:
    block: Block
    returncode: int | None       # None: timed out
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return (self.returncode == self.block.exit
                and all(e in self.output for e in self.block.expect))

    def describe(self) -> str:
        b = self.block
        if self.returncode is None:
            status = f"timed out after {b.timeout:g} s"
        elif self.returncode != b.exit:
            status = f"exit status {self.returncode}, expected {b.exit}"
        else:
            missing = [e for e in b.expect if e not in self.output]
            status = "output lacks " + ", ".join(repr(m) for m in missing) if missing else "ok"
        code = "".join(f"    {ln}\n" for ln in b.code.splitlines())
        out = self.output if len(self.output) < 6000 else "…" + self.output[-6000:]
        return f"{b.where} ({b.lang}): {status} ({self.seconds:.1f} s)\n  block:\n{code}  output:\n{out}"


@dataclass
class Session:
    """One document's directory and environment; blocks run in it in order."""

    doc: Path                    # the document (absolute)
    workdir: Path
    bindir: Path                 # the venv bin/ put first on PATH (qsafe, python)
    repo: Path = REPO
    applied: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rel = self.doc.resolve().relative_to(self.repo.resolve())
        if rel.parts[0] == "examples" and len(rel.parts) > 2:
            # an example README runs in a copy of its example folder (its relative paths must work)
            shutil.copytree(self.doc.parent, self.workdir, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        home = self.workdir.parent / (self.workdir.name + ".home")
        home.mkdir(exist_ok=True)
        keep = {k: v for k, v in os.environ.items()
                if k in ("LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                         "PIP_CONFIG_FILE", "PIP_CERT", "SSL_CERT_FILE", "XDG_CONFIG_DIRS")}
        self.env = {
            **keep,
            "PATH": f"{self.bindir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "QSAFE_PASSPHRASE": PASSPHRASE,
            "QSAFE_SCRYPT_WORK_FACTOR": "10",
            "QSAFE_DOCTEST": "1",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TERM": "dumb",
            "VIRTUAL_ENV": str(self.bindir.parent),
            **self.env,
        }

    def command(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run one command in the session (setups use it); raises on failure."""
        proc = subprocess.run(list(argv), cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"setup command {shlex.join(argv)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        return proc

    def apply_setups(self, names: Iterable[str]) -> None:
        setups = _setups()
        for name in names:
            if name not in self.applied:
                for dependency in setups[name].requires:
                    self.apply_setups([dependency])
                setups[name](self)
                self.applied.add(name)

    def run(self, block: Block) -> Outcome:
        self.apply_setups(block.setups)
        if block.lang == "sh":
            argv = ["bash", "-e", "-o", "pipefail", "-c", block.code, f"{block.where}"]
        else:
            argv = [str(self.bindir / "python"), "-c", block.code]
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=block.timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the block's whole process group, nothing else
            out, _ = proc.communicate()
            code = None
        return Outcome(block, code, out.decode("utf-8", "replace"), time.monotonic() - start)


def run_document(doc: Path, workdir: Path, bindir: Path, *, include_slow: bool,
                 on_block: Callable[[Outcome], None] | None = None, repo: Path = REPO) -> list[Outcome]:
    """Run a document's blocks in order (skipped ones and, unless include_slow, slow ones left out).

    Stops at the first failing block; returns the outcomes so far (the last one is the failure, if any).
    """
    session = Session(doc=doc, workdir=workdir, bindir=bindir, repo=repo)
    outcomes: list[Outcome] = []
    for block in parse_file(doc, repo):
        if block.skip is not None or (block.slow and not include_slow):
            continue
        outcome = session.run(block)
        outcomes.append(outcome)
        if on_block is not None:
            on_block(outcome)
        if not outcome.ok:
            break
    return outcomes


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("docs", nargs="*", type=Path, help="documents to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list every block and whether it runs")
    parser.add_argument("--slow", action="store_true", help="also run slow blocks")
    parser.add_argument("--bindir", type=Path, default=Path(sys.executable).parent,
                        help="bin/ of the venv whose qsafe runs (default: this interpreter's)")
    args = parser.parse_args(argv)
    docs = [p.resolve() for p in args.docs] or documents()
    if args.list:
        for doc in docs:
            for b in parse_file(doc):
                state = f"skip: {b.skip}" if b.skip else ("slow" if b.slow else "run")
                print(f"{b.where:40} {b.lang:6} {state}")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="qsafe-doctest-") as tmp:
        for n, doc in enumerate(docs):
            def show(o: Outcome) -> None:
                print(o.describe() if not o.ok else f"{o.block.where}: ok ({o.seconds:.1f} s)\n{o.output}", flush=True)
            outcomes = run_document(doc, Path(tmp) / f"doc{n}", args.bindir.resolve(), include_slow=args.slow,
                                    on_block=show)
            failed += sum(not o.ok for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
