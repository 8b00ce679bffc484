"""Run one harness under atheris: ``python -m fuzz NAME [libFuzzer flags] [CORPUS_DIR ...]``.

The qsafe modules the harness reaches are instrumented for coverage (imported, and then warmed up on the seed
corpus, inside ``atheris.instrument_imports``, so that modules qsafe imports lazily are instrumented too). An
input whose run raises a :class:`qsafe.errors.QsafeError` is a clean refusal; any other exception is a crash
(atheris prints it and libFuzzer saves the input). Hangs and memory are libFuzzer's ``-timeout`` and
``-rss_limit_mb`` (``fuzz/run.py`` passes 10 s and 256 MiB). Files written are capped by RLIMIT_FSIZE.
"""

from __future__ import annotations

import importlib
import resource
import signal
import sys
from pathlib import Path

import atheris

from fuzz import known
from fuzz.harnesses import HARNESSES

SEEDS = Path(__file__).resolve().parent / "seeds"
MAX_FILE_BYTES = 64 << 20


def _load(name: str):  # type: ignore[no-untyped-def]
    with atheris.instrument_imports(include=["qsafe", *getattr_default(name)]):
        from qsafe.errors import MissingDependencyError, QsafeError

        module = importlib.import_module(f"fuzz.harnesses.{name}")
        for seed in sorted((SEEDS / name).glob("*")):  # warm-up: lazy imports happen here, instrumented
            try:
                module.test_one_input(seed.read_bytes())
            except Exception:  # noqa: BLE001, S110 - a crashing seed is reported by the fuzzing run itself
                pass
    if hasattr(module, "fuzz_setup"):
        module.fuzz_setup()
    strict = known.strict()

    def test_one_input(data: bytes) -> None:
        try:
            module.test_one_input(data)
        except MissingDependencyError:
            raise  # the environment, not the input: the harness would test nothing (reinstall qsafe[dev])
        except QsafeError:
            pass
        except BaseException as exc:
            if not strict and known.match(name, exc):
                return
            raise

    return test_one_input


def getattr_default(name: str) -> tuple[str, ...]:
    """Extra (non-qsafe) modules a harness asks to instrument, e.g. ``tarfile``; imported afresh under it."""
    extra = {"tar": ("tarfile",)}.get(name, ())
    for module in extra:
        sys.modules.pop(module, None)
    return extra


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in (*HARNESSES, "selftest"):
        sys.exit(f"usage: python -m fuzz NAME [libFuzzer args]; NAME is one of {', '.join(HARNESSES)}")
    name = sys.argv[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap is then an OSError: a crash
    one = _load(name)
    atheris.Setup([f"fuzz-{name}", *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
