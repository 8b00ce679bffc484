"""The digits CNN and its safetensors file format (architecture in the header metadata; never pickle).

``DigitsCNN(width)``: conv3x3(1->16w) ReLU, conv3x3(16w->32w) ReLU, max-pool 2, flatten (32w x 4 x 4),
linear(->64w) ReLU, linear(->10). Width 1 has 38,282 parameters, width 2 has 151,306, width 4 has 601,610.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qsafe.errors import FormatError
from qsafe.robustness._torch import torch

__all__ = ["ARCHITECTURE", "build_cnn", "load_classifier", "parameter_count", "save_classifier"]

ARCHITECTURE = "qsafe-digits-cnn/v1"


def build_cnn(width: int = 1) -> Any:
    """A fresh digits CNN (torch ``nn.Sequential``), input (n, 1, 8, 8) in [0, 1], 10 logits."""
    nn = torch().nn
    if not 1 <= width <= 16:
        raise FormatError(f"CNN width must be 1..16, not {width}")
    c1, c2, hidden = 16 * width, 32 * width, 64 * width
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * 16, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def parameter_count(model: Any) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters()))


def save_classifier(model: Any, path: str | os.PathLike[str], *, width: int, info: dict[str, Any]) -> None:
    """Write the model's tensors and architecture to a safetensors file (atomically).

    Args:
        model: a :func:`build_cnn` model.
        path: output ``.safetensors`` path.
        width: the width it was built with.
        info: training facts kept in the header (recipe, epsilon, sigma, seed, accuracy ...), JSON-able.
    """
    from safetensors.torch import save

    from qsafe._io import atomic_output

    meta = {"architecture": ARCHITECTURE, "width": str(width), "info": json.dumps(info, sort_keys=True)}
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(Path(path)) as handle:
        handle.write(save(tensors, metadata=meta))


def load_classifier(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Read a classifier written by :func:`save_classifier`; returns (model in eval mode, info).

    Only tensors are read (safetensors, no pickle). Use the load gate (``qsafe load``) first when the file must be
    the signed one; the robustness commands take ``--signature/--key`` to do that.

    Raises:
        FormatError: not a safetensors file of this architecture, or tensors that do not fit it.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open has no iter
    except (SafetensorError, OSError, ValueError) as exc:
        raise FormatError(f"cannot read classifier {path}: {exc}") from exc
    if meta.get("architecture") != ARCHITECTURE:
        raise FormatError(f"{path} is not a {ARCHITECTURE} classifier (architecture {meta.get('architecture')!r})")
    try:
        width = int(meta.get("width", "1"))
        info = json.loads(meta.get("info", "{}"))
    except ValueError as exc:
        raise FormatError(f"{path}: bad classifier metadata: {exc}") from exc
    model = build_cnn(width)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise FormatError(f"{path}: tensors do not fit the architecture: {str(exc).splitlines()[0]}") from exc
    model.eval()
    return model, {"width": width, **info}
