"""The fraud pipeline: a TOML config, stages run in order, each resumable, each leaving signed evidence.

``run_pipeline(config)`` runs every stage of :data:`qsafe.fraud.stages.STAGES`. A stage records what it read
and wrote (SHA-256 of every file) and the digest of its config section in ``WORKDIR/state/STAGE.json``; on the
next run a stage whose record still matches the files on disk and the config is skipped, so an interrupted run
resumes where it stopped and a changed input re-runs exactly the stages downstream of it. ``force`` re-runs
named stages (and, through the changed outputs, everything after them).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsafe import _limits
from qsafe.errors import FormatError, UsageError

__all__ = ["PipelineConfig", "PipelineResult", "load_config", "run_pipeline"]

Progress = Callable[[str, str], None]

DEFAULTS: dict[str, dict[str, Any]] = {
    "pipeline": {"name": "fraud-pipeline", "workdir": "work", "seed": 0, "workers": 2},
    "data": {"csv": "data/creditcard_sample.csv", "provenance": "", "split": [0.6, 0.2, 0.2]},
    "keys": {"dir": "keys", "generate": True, "protect": False},
    "training": {"epsilon": 1.0, "delta": 1e-5, "hidden": 16, "epochs": 30, "sample_rate": 0.25, "clip": 1.0,
                 "lr": 0.15, "momentum": 0.9, "accountant": "rdp", "compare_epsilons": [3.0, 8.0],
                 "unsafe_train_on_failed_audit": False},
    "poisoning": {"folds": 5, "random": [0.05, 0.10, 0.20], "targeted_budget": 0.10},
    "privacy": {"models": 16, "baseline_models": 8},
    "theft": {"queries": 1000, "benign_keys": 200, "watermark_rate": 0.02, "monitor_alpha": 1e-5,
              "watermark_alpha": 1e-3, "score_decimals": 3},
    "release": {"policy": "policies/fraud-release.json", "evidence": "hopper-h100"},
    "goals": {"pr_auc": 0.90, "high_amount_recall": 0.80, "membership_advantage_frauds": 0.05,
              "extraction_f1": 0.85, "extraction_queries": 1000, "watermark_identified": 1.0,
              "watermark_false_positive_rate": 0.01},
}


@dataclass(frozen=True)
class PipelineConfig:
    """A validated pipeline config. ``base`` is the config file's folder (relative paths start there)."""

    sections: dict[str, dict[str, Any]]
    base: Path
    source: str = "<config>"

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base / p

    @property
    def workdir(self) -> Path:
        return self.path(str(self.sections["pipeline"]["workdir"]))

    def digest(self, *sections: str) -> str:
        doc = {s: self.sections[s] for s in sections}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _check(section: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise FormatError(f"pipeline config: [{section}] {key} must be like {default!r}, not {value!r}")
    return value


def config_from_dict(doc: Mapping[str, Any], base: Path, source: str = "<config>") -> PipelineConfig:
    """Validate a parsed config: unknown sections or keys and wrong types are errors (never ignored).

    Raises:
        FormatError: an unknown section or key, or a value of the wrong type.
    """
    sections: dict[str, dict[str, Any]] = {}
    for name in doc:
        if name not in DEFAULTS:
            raise FormatError(f"pipeline config: unknown section [{name}] (known: {', '.join(DEFAULTS)})")
    for name, defaults in DEFAULTS.items():
        given = doc.get(name, {})
        if not isinstance(given, dict):
            raise FormatError(f"pipeline config: [{name}] must be a table")
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise FormatError(f"pipeline config: unknown key(s) in [{name}]: {', '.join(unknown)}")
        sections[name] = {k: _check(name, k, given.get(k, d), d) for k, d in defaults.items()}
    return PipelineConfig(sections, base, source)


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read a pipeline TOML file (at most 1 MiB).

    Raises:
        FormatError: unreadable, not TOML, or invalid (see :func:`config_from_dict`).
    """
    from qsafe._files import read_regular

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    p = Path(path)
    data = read_regular(p, "pipeline config", max_bytes=_limits.PIPELINE_CONFIG_MAX_BYTES)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FormatError(f"pipeline config {p} is not TOML: {exc}") from exc
    return config_from_dict(doc, p.resolve().parent, str(p))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class PipelineResult:
    """What a run did: per stage ``ran`` or ``skipped`` with its summary and seconds; the report path."""

    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Path | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"stages": self.stages, "report": str(self.report) if self.report else None,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the audit workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _record_path(cfg: PipelineConfig, stage: str) -> Path:
    return cfg.workdir / "state" / f"{stage}.json"


def _current(cfg: PipelineConfig, files: Sequence[str]) -> dict[str, str] | None:
    out = {}
    for rel in files:
        p = cfg.workdir / rel
        if not p.is_file():
            return None
        out[rel] = file_digest(p)
    return out


def _up_to_date(cfg: PipelineConfig, stage: Any) -> dict[str, Any] | None:
    path = _record_path(cfg, stage.name)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    current = _current(cfg, stage.inputs)  # {} for a stage without inputs (keys): up to date, not "missing"
    inputs = {**stage.external_inputs(cfg), **(current if current is not None else {"?": "missing"})}
    if record.get("config") != cfg.digest(*stage.sections) or record.get("inputs") != inputs:
        return None
    if record.get("outputs") != _current(cfg, stage.outputs_for(cfg)):
        return None
    return dict(record)


def run_pipeline(config: PipelineConfig, *, force: Sequence[str] = (), only: Sequence[str] = (),
                 passphrase: bytes | None = None, progress: Progress | None = None) -> PipelineResult:
    """Run (or resume) the pipeline.

    Args:
        config: the validated config.
        force: stage names to re-run even when up to date.
        only: run stages up to and including the last named one (the rest are left as they are).
        passphrase: for protected private keys (``[keys] protect = true``).
        progress: ``progress(stage, line)`` for each step.

    Returns:
        The per-stage summaries and the report's path.

    Raises:
        UsageError: an unknown stage name. The stages' own errors (a tampered dataset, a failed audit, a gate
            refusal) propagate: nothing after the failing stage runs.
    """
    from qsafe._io import atomic_output
    from qsafe.fraud.stages import STAGES, Context

    names = [s.name for s in STAGES]
    for n in (*force, *only):
        if n not in names:
            raise UsageError(f"unknown stage {n!r} (stages: {', '.join(names)})")
    last = max((names.index(n) for n in only), default=len(names) - 1)
    (config.workdir / "state").mkdir(parents=True, exist_ok=True)
    ctx = Context(config, passphrase=passphrase, progress=progress)
    result = PipelineResult()
    t0, c0 = time.monotonic(), _cpu()
    for stage in STAGES[: last + 1]:
        record = None if stage.name in force else _up_to_date(config, stage)
        if record is not None:
            result.stages[stage.name] = {"status": "skipped (up to date)", "summary": record.get("summary", {}),
                                         "seconds": record.get("seconds")}
            if progress:
                progress(stage.name, "up to date, skipped")
            continue
        if progress:
            progress(stage.name, "running")
        s0, sc0 = time.monotonic(), _cpu()
        inputs = {**stage.external_inputs(config), **(_current(config, stage.inputs) or {})}
        summary = stage.run(ctx)
        seconds = round(time.monotonic() - s0, 2)
        cpu = round(_cpu() - sc0, 2)
        record = {"stage": stage.name, "config": config.digest(*stage.sections), "inputs": inputs,
                  "outputs": _current(config, stage.outputs_for(config)) or {}, "summary": summary,
                  "seconds": seconds, "cpu_seconds": cpu}
        with atomic_output(_record_path(config, stage.name)) as out:
            out.write((json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode())
        result.stages[stage.name] = {"status": "ran", "summary": summary, "seconds": seconds, "cpu_seconds": cpu}
        if progress:
            progress(stage.name, f"done in {seconds:.1f} s ({cpu:.1f} s CPU)")
    result.seconds = round(time.monotonic() - t0, 2)
    result.cpu_seconds = round(_cpu() - c0, 2)
    report = config.workdir / "report" / "report.md"
    result.report = report if report.is_file() else None
    return result
