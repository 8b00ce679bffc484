"""Named setups a doc block may declare (``<!-- doctest: setup=model,keys -->``); the convention is in
tests/doc_blocks/README.md.

A setup stands for what a reader already has (a model, a training run's updates). It writes into the
document's directory through the session (``session.workdir``; ``session.qsafe(...)`` runs the installed CLI
with the document's environment), runs once per document, and is cheap and deterministic. Add yours here with
``@setup("name", requires=(...))`` and a line in the table of tests/doc_blocks/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SETUPS: dict[str, Any] = {}


def setup(name: str, requires: tuple[str, ...] = ()) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        fn.requires = requires  # type: ignore[attr-defined]
        SETUPS[name] = fn
        return fn
    return register


def _qsafe(session: Any, *args: str) -> None:
    session.command([str(session.bindir / "qsafe"), *args])


@setup("model")
def model(session: Any) -> None:
    """``my-model/``: config.json and a safetensors file of two small F32 tensors (stands for your model)."""
    import numpy as np
    from safetensors.numpy import save_file

    root = session.workdir / "my-model"
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(13)
    save_file({"classifier.weight": rng.standard_normal((4, 16)).astype(np.float32),
               "classifier.bias": rng.standard_normal(4).astype(np.float32)},
              str(root / "model.safetensors"), metadata={"format": "np"})
    (root / "config.json").write_text('{"architectures": ["TinyClassifier"], "hidden_size": 16}\n')


@setup("keys")
def keys(session: Any) -> None:
    """``release.pub`` / ``release.key``: ML-DSA-65, protected with the doctest passphrase."""
    _qsafe(session, "keygen", "--out", "release")


@setup("signed-model", requires=("model", "keys"))
def signed_model(session: Any) -> None:
    """``my-model/model.sig``, signed with ``release.key``."""
    _qsafe(session, "sign", "my-model", "--key", "release.key")


@setup("fl-updates")
def fl_updates(session: Any) -> None:
    """``update1.safetensors`` … ``update3.safetensors``: float32, values in ±0.5, same names and shapes."""
    import numpy as np
    from safetensors.numpy import save_file

    for n in (1, 2, 3):
        rng = np.random.default_rng(100 + n)
        save_file({"classifier.weight": rng.uniform(-0.5, 0.5, (4, 16)).astype(np.float32),
                   "classifier.bias": rng.uniform(-0.5, 0.5, 4).astype(np.float32)},
                  str(session.workdir / f"update{n}.safetensors"))


@setup("passphrase-file")
def passphrase_file(session: Any) -> None:
    """``pw.txt``: the doctest passphrase on one line."""
    (session.workdir / "pw.txt").write_text(session.env["QSAFE_PASSPHRASE"] + "\n")
