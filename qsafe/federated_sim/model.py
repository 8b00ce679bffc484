"""The scenario's text classifier and local training, in torch (imported here only, never by ``import qsafe``).

The model is fastText-shaped: a bag of hashed word embeddings (summed) and a linear layer to two classes. The
simulation only ever sees flat float32 numpy vectors (parameters and updates), so defenses, attacks, the audit
trail and the HE path stay numpy-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ModelSpec", "TextModel"]


@dataclass(frozen=True)
class ModelSpec:
    """Shape and local-training hyper-parameters of the classifier."""

    buckets: int = 8192
    dim: int = 16
    lr: float = 0.5
    epochs: int = 2
    batch_size: int = 32


class TextModel:
    """A torch text classifier driven through flat numpy parameter vectors."""

    def __init__(self, spec: ModelSpec, seed: int) -> None:
        import torch  # lazy: the heavy import happens only when a simulation runs

        self._torch = torch
        self.spec = spec
        torch.manual_seed(seed)
        self._net = torch.nn.Sequential(
            torch.nn.EmbeddingBag(spec.buckets + 1, spec.dim, mode="sum", padding_idx=0),
            torch.nn.Linear(spec.dim, 2),
        )
        embedding: Any = self._net[0]
        with torch.no_grad():  # torch's N(0, 1) embedding init drowns a summed bag; start small instead
            embedding.weight.uniform_(-0.05, 0.05)
            embedding.weight[0].zero_()
        self._params = list(self._net.parameters())

    @property
    def size(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self._params)

    def get(self) -> np.ndarray:
        """The current parameters as one float32 vector."""
        vec = self._torch.nn.utils.parameters_to_vector(self._params)
        return vec.detach().numpy().astype(np.float32, copy=True)

    def set(self, flat: np.ndarray) -> None:
        """Load parameters from a flat float32 vector."""
        # A copy: vector_to_parameters makes the parameters views of the tensor, and training must never write
        # into the caller's array (the global model).
        self._torch.nn.utils.vector_to_parameters(self._torch.tensor(flat, dtype=self._torch.float32), self._params)

    def train_update(self, start: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
        """Run local SGD from ``start`` on ``(x, y)``; return the update (local minus start).

        Args:
            start: the global parameters.
            x: ``(n, length)`` token ids.
            y: ``(n,)`` labels.
            seed: seeds the mini-batch order.

        Returns:
            The float32 update vector.
        """
        torch = self._torch
        self.set(start)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        order_rng = np.random.default_rng(seed)
        for _ in range(self.spec.epochs):
            for batch in np.array_split(order_rng.permutation(len(y)), max(1, len(y) // self.spec.batch_size)):
                b = torch.from_numpy(batch)
                loss = torch.nn.functional.cross_entropy(self._net(xt[b]), yt[b])
                grads = torch.autograd.grad(loss, self._params)
                # plain SGD by hand: torch.optim's first use imports torch._dynamo (seconds, for nothing here)
                with torch.no_grad():
                    for param, grad in zip(self._params, grads):
                        param.sub_(grad, alpha=self.spec.lr)
        return np.asarray(self.get() - start, dtype=np.float32)

    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Predicted labels for ``x`` under ``params``."""
        torch = self._torch
        self.set(params)
        with torch.no_grad():
            logits: Any = self._net(torch.from_numpy(x))
        return np.asarray(logits.argmax(dim=1).numpy())
