"""Training recipes for the digits CNN: standard, PGD adversarial training (Madry), TRADES (Zhang et al. 2019)
and Gaussian-noise training with a consistency term (for randomized smoothing; Jeong & Shin 2020).

All recipes use Adam with a cosine learning-rate schedule and, for the adversarial ones, a linear epsilon
ramp over the first ``warmup`` fraction of epochs (small data sets overfit the full epsilon early otherwise).
Inner attacks project (see :mod:`qsafe.robustness.attacks`). Deterministic under ``seed`` with one torch thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from qsafe.errors import UsageError
from qsafe.robustness._torch import seed_all, torch
from qsafe.robustness.attacks import project

__all__ = ["RECIPES", "TrainConfig", "train"]

RECIPES = ("standard", "pgd", "trades", "noise")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (every field is recorded in the model's header).

    Attributes:
        recipe: ``standard``, ``pgd`` (adversarial training), ``trades`` or ``noise`` (smoothing base model).
        epsilon: L-inf radius of the training attack (pgd, trades).
        sigma: Gaussian noise level (noise).
        epochs, batch_size, lr, weight_decay: optimiser settings (Adam, cosine schedule).
        attack_steps: inner PGD steps; step size 2.5 * eps / steps.
        beta: TRADES robustness weight.
        consistency: weight of the consistency term (noise recipe; 0 disables it), ``noise_samples`` copies.
        warmup: fraction of epochs over which epsilon ramps up linearly.
        width: CNN width multiplier. seed: everything random.
    """

    recipe: str = "standard"
    epsilon: float = 0.1
    sigma: float = 0.25
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    attack_steps: int = 10
    beta: float = 6.0
    consistency: float = 10.0
    noise_samples: int = 2
    warmup: float = 0.3
    width: int = 1
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kl(logits_adv: Any, logits_clean: Any) -> Any:
    t = torch()
    return t.nn.functional.kl_div(t.log_softmax(logits_adv, 1), t.softmax(logits_clean, 1), reduction="none").sum(1)


def _trades_inner(model: Any, x: Any, eps: float, steps: int, gen: Any) -> Any:
    t = torch()
    with t.no_grad():
        clean = model(x)
    x_adv = project(x + 0.001 * t.randn(x.shape, generator=gen), x, "linf", eps)
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = t.autograd.grad(_kl(model(x_adv), clean).sum(), x_adv)
        x_adv = project(x_adv + alpha * grad.sign(), x, "linf", eps)
    return x_adv.detach()


def _batch_loss(model: Any, cfg: TrainConfig, x: Any, y: Any, eps: float, gen: Any) -> Any:
    t = torch()
    f = t.nn.functional
    if cfg.recipe == "standard":
        return f.cross_entropy(model(x), y)
    if cfg.recipe == "pgd":
        model.eval()
        x_adv = _pgd_last(model, x, y, eps, cfg.attack_steps, gen) if eps > 0 else x
        model.train()
        return f.cross_entropy(model(x_adv), y)
    if cfg.recipe == "trades":
        model.eval()
        x_adv = _trades_inner(model, x, eps, cfg.attack_steps, gen) if eps > 0 else x
        model.train()
        logits = model(x)
        return f.cross_entropy(logits, y) + cfg.beta * _kl(model(x_adv), logits).mean()
    # noise: Gaussian augmentation, several noisy copies, consistency towards their mean prediction
    m = max(1, cfg.noise_samples)
    xs = x.repeat(m, 1, 1, 1)
    noisy = xs + cfg.sigma * t.randn(xs.shape, generator=gen)
    logits = model(noisy).view(m, len(y), -1)
    ce = sum(f.cross_entropy(logits[i], y) for i in range(m)) / m
    if cfg.consistency <= 0 or m < 2:
        return ce
    probs = t.softmax(logits, 2)
    mean = probs.mean(0).clamp_min(1e-8)
    kl = sum(f.kl_div(t.log_softmax(logits[i], 1), mean, reduction="batchmean") for i in range(m)) / m
    ent = -(mean * mean.log()).sum(1).mean()
    return ce + cfg.consistency * kl + 0.5 * ent


def _pgd_last(model: Any, x: Any, y: Any, eps: float, steps: int, gen: Any) -> Any:
    """PGD's final iterate (training maximises the loss; it does not stop at the first misclassification)."""
    t = torch()
    alpha = 2.5 * eps / steps
    x_adv = project(x + (t.rand(x.shape, generator=gen) * 2 - 1) * eps, x, "linf", eps)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = t.autograd.grad(t.nn.functional.cross_entropy(model(x_adv), y), x_adv)
        x_adv = project(x_adv + alpha * grad.sign(), x, "linf", eps)
    return x_adv.detach()


def train(x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
          progress: Callable[[int, int, float], None] | None = None) -> Any:
    """Train a digits CNN with ``cfg`` on ``(x, y)``.

    Args:
        x: (n, 1, 8, 8) float32 in [0, 1]. y: (n,) int64.
        cfg: the recipe and hyper-parameters.
        progress: called ``(epoch, epochs, mean_loss)`` after each epoch.

    Returns:
        The trained model (eval mode).

    Raises:
        UsageError: unknown recipe or bad hyper-parameters.
    """
    from qsafe.robustness.models import build_cnn

    if cfg.recipe not in RECIPES:
        raise UsageError(f"unknown recipe {cfg.recipe!r}; choose from {', '.join(RECIPES)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lr > 0:
        raise UsageError("epochs, batch size and learning rate must be positive")
    t = torch()
    gen = seed_all(cfg.seed)
    model = build_cnn(cfg.width)
    xt, yt = t.from_numpy(np.ascontiguousarray(x)), t.from_numpy(np.ascontiguousarray(y))
    opt = t.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = math.ceil(len(yt) / cfg.batch_size)
    total = cfg.epochs * batches
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = t.randperm(len(yt), generator=gen)
        ramp = min(1.0, (epoch + 1) / max(1.0, cfg.warmup * cfg.epochs))
        eps = cfg.epsilon * ramp
        running = 0.0
        for b in range(batches):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = _batch_loss(model, cfg, xt[idx], yt[idx], eps, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += float(loss.detach())
            step += 1
        if progress is not None:
            progress(epoch + 1, cfg.epochs, running / batches)
    model.eval()
    return model
