"""How a model that does not match its signature is described: one text for ``qsafe verify`` and the load gate."""

from __future__ import annotations

__all__ = ["mismatch_message"]


def mismatch_message(
    changed: list[str], missing: list[str], extra: list[str], tensors: dict[str, list[str]]
) -> list[str]:
    """The lines of a :class:`~qsafe.errors.ModelMismatchError`: counts, then one line per changed (with its
    tensors), missing and extra file. Names from the model folder and the bundle are escaped by the error (one line
    each). Shared by :mod:`qsafe.verifying` and the load gate's read pass."""
    counts = f"{len(changed)} changed, {len(missing)} missing, {len(extra)} extra file(s)"
    lines = [f"the model does not match its signature: {counts}"]
    for f in changed:
        detail = f" (tensors: {', '.join(tensors[f])})" if tensors.get(f) else ""
        lines.append(f"changed: {f}{detail}")
    lines += [f"missing: {f}" for f in missing]
    lines += [f"extra: {f}" for f in extra]
    return lines
