"""A security-hardened credit-card fraud pipeline: every stage leaves signed evidence.

Stages (each a module, each usable alone; torch, Opacus and scikit-learn are imported only inside functions):

- :mod:`qsafe.fraud.data` and :mod:`qsafe.fraud.dataset`: strict CSV reading and the signed dataset manifest (a
  Merkle root over rows: a tampered copy is refused and the changed rows are named);
- :mod:`qsafe.fraud.poisoning`: label-flip attacks, detectors, the signed poisoning audit and the training gate;
- :mod:`qsafe.fraud.training`: the model, DP-SGD with Opacus and the DP certificate;
- :mod:`qsafe.fraud.privacy`: membership inference (loss threshold, LiRA) beside the DP bound;
- :mod:`qsafe.fraud.theft`: the scoring API, model extraction, the per-key query monitor and the watermark;
- :mod:`qsafe.fraud.evidence`: the model card and the other signed statements about the model;
- :mod:`qsafe.fraud.pipeline`: the resumable pipeline (``qsafe pipeline run``) and its report.
"""

from __future__ import annotations

__all__: list[str] = []
