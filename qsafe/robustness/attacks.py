"""White-box evasion attacks in plain torch: FGSM, PGD (L-inf and L2, random restarts) and APGD-CE.

Every attack works on a batch of inputs in [0, 1] and keeps each iterate inside the threat model by
**projection** (onto the epsilon-ball and the [0, 1] box) after the step, never by clamping inside the loss
(clamping there zeroes the gradient at the box edges and weakens the attack). A sample counts as broken as soon
as any iterate of any restart is misclassified; the returned adversarial example is that iterate.

APGD-CE follows Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks": step size 2*eps halved at checkpoints when progress stalls, momentum 0.75, restart from
the best point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qsafe.errors import UsageError
from qsafe.robustness._torch import torch

__all__ = ["ART_ATTACKS", "ATTACKS", "AttackSpec", "apgd_ce", "fgsm", "pgd", "run_attack"]

NORMS = ("linf", "l2")


@dataclass(frozen=True)
class AttackSpec:
    """One attack configuration.

    Attributes:
        name: ``fgsm``, ``pgd`` or ``apgd-ce`` (qsafe's), or ``art-pgd`` / ``art-apgd-ce`` (ART 1.20.1's, run on
            the same model; a test dependency).
        norm: ``linf`` or ``l2``.
        epsilon: radius of the ball.
        steps: iterations (PGD default 40, APGD 100; FGSM 1).
        restarts: random restarts (a sample is robust only if all fail).
        step_size: PGD step (default 2.5 * eps / steps); APGD chooses its own.
    """

    name: str
    norm: str
    epsilon: float
    steps: int = 40
    restarts: int = 1
    step_size: float | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "norm": self.norm, "epsilon": self.epsilon, "steps": self.steps,
                               "restarts": self.restarts}
        if self.name in ("pgd", "art-pgd"):
            out["step_size"] = self.pgd_step()
        if self.name in ART_ATTACKS:
            out["engine"] = "adversarial-robustness-toolbox"
        return out

    def pgd_step(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / max(1, self.steps)


def _check(norm: str, epsilon: float) -> None:
    if norm not in NORMS:
        raise UsageError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    if not (epsilon >= 0 and math.isfinite(epsilon)):
        raise UsageError(f"epsilon must be a finite number >= 0, not {epsilon}")


def _flat_norm(t: Any) -> Any:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(x_adv: Any, x: Any, norm: str, epsilon: float) -> Any:
    """Project onto the epsilon-ball around ``x`` (L-inf or L2), then onto the [0, 1] box."""
    t = torch()
    if norm not in NORMS:
        raise UsageError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-epsilon, epsilon)
    else:
        delta = delta * (epsilon / _flat_norm(delta)).clamp(max=1.0)
    return t.clamp(x + delta, 0.0, 1.0)


def _random_start(x: Any, norm: str, epsilon: float, gen: Any) -> Any:
    t = torch()
    if norm == "linf":
        noise = (t.rand(x.shape, generator=gen) * 2 - 1) * epsilon
    else:
        noise = t.randn(x.shape, generator=gen)
        radius = t.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=gen) ** (1.0 / x[0].numel())
        noise = noise / _flat_norm(noise) * radius * epsilon
    return project(x + noise, x, norm, epsilon)


def _step(grad: Any, norm: str) -> Any:
    return grad.sign() if norm == "linf" else grad / _flat_norm(grad)


def _grad(model: Any, x_adv: Any, y: Any, loss_fn: Callable[..., Any] | None = None) -> tuple[Any, Any, Any]:
    t = torch()
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    losses = (loss_fn or t.nn.functional.cross_entropy)(logits, y, reduction="none")
    (grad,) = t.autograd.grad(losses.sum(), x_adv)
    return grad.detach(), losses.detach(), logits.detach()


def _record(best: Any, broken: Any, x_adv: Any, logits: Any, y: Any) -> None:
    wrong = logits.argmax(1) != y
    new = wrong & ~broken
    best[new] = x_adv[new].detach()
    broken |= wrong


def fgsm(model: Any, x: Any, y: Any, epsilon: float, norm: str = "linf") -> tuple[Any, Any]:
    """Fast gradient (sign) method: one step of size epsilon.

    Returns:
        ``(x_adv, broken)``: adversarial inputs and a bool mask of misclassified samples.
    """
    _check(norm, epsilon)
    grad, _, logits = _grad(model, x, y)
    best, broken = x.clone(), logits.argmax(1) != y
    x_adv = project(x + epsilon * _step(grad, norm), x, norm, epsilon)
    with torch().no_grad():
        _record(best, broken, x_adv, model(x_adv), y)
    return best, broken


def pgd(model: Any, x: Any, y: Any, epsilon: float, norm: str = "linf", *, steps: int = 40, restarts: int = 1,
        step_size: float | None = None, gen: Any = None, random_start: bool = True) -> tuple[Any, Any]:
    """Projected gradient descent on the cross-entropy (Madry et al.), with random restarts.

    Returns:
        ``(x_adv, broken)`` as :func:`fgsm`.
    """
    t = torch()
    _check(norm, epsilon)
    alpha = step_size if step_size is not None else 2.5 * epsilon / max(1, steps)
    with t.no_grad():
        logits = model(x)
    best, broken = x.clone(), logits.argmax(1) != y
    for _ in range(max(1, restarts)):
        todo = ~broken
        if not todo.any():
            break
        xs, ys = x[todo], y[todo]
        x_adv = _random_start(xs, norm, epsilon, gen) if random_start else xs.clone()
        sub_best, sub_broken = xs.clone(), t.zeros(len(ys), dtype=t.bool)
        for _ in range(steps):
            grad, _, logits = _grad(model, x_adv, ys)
            _record(sub_best, sub_broken, x_adv, logits, ys)
            x_adv = project(x_adv + alpha * _step(grad, norm), xs, norm, epsilon)
        with t.no_grad():
            _record(sub_best, sub_broken, x_adv, model(x_adv), ys)
        idx = todo.nonzero().flatten()
        best[idx[sub_broken]] = sub_best[sub_broken]
        broken[idx] |= sub_broken
    return best, broken


def _checkpoints(steps: int) -> list[int]:
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(v * steps, 6)) for v in p[1:] if v <= 1})


def apgd_ce(model: Any, x: Any, y: Any, epsilon: float, norm: str = "linf", *, steps: int = 100, restarts: int = 1,
            gen: Any = None, rho: float = 0.75) -> tuple[Any, Any]:
    """Auto-PGD on the cross-entropy (Croce & Hein 2020): no step size to tune.

    Returns:
        ``(x_adv, broken)`` as :func:`fgsm`.
    """
    t = torch()
    _check(norm, epsilon)
    with t.no_grad():
        logits = model(x)
    best, broken = x.clone(), logits.argmax(1) != y
    checkpoints = set(_checkpoints(steps))
    shape = (-1,) + (1,) * (x.dim() - 1)
    for _ in range(max(1, restarts)):
        todo = ~broken
        if not todo.any():
            break
        xs, ys = x[todo], y[todo]
        n = len(ys)
        sub_best, sub_broken = xs.clone(), t.zeros(n, dtype=t.bool)
        x_k = _random_start(xs, norm, epsilon, gen)
        eta = t.full((n,), 2.0 * epsilon)
        grad, loss, logits = _grad(model, x_k, ys)
        _record(sub_best, sub_broken, x_k, logits, ys)
        x_max, f_max, g_max = x_k.clone(), loss.clone(), grad.clone()
        x_prev = x_k.clone()
        increases = t.zeros(n)
        last_check, f_max_at_check, eta_at_check = 0, f_max.clone(), eta.clone()
        for k in range(steps):
            z = project(x_k + eta.view(shape) * _step(grad, norm), xs, norm, epsilon)
            momentum = 0.75 if k > 0 else 1.0
            x_new = project(x_k + momentum * (z - x_k) + (1 - momentum) * (x_k - x_prev), xs, norm, epsilon)
            grad_new, loss_new, logits = _grad(model, x_new, ys)
            _record(sub_best, sub_broken, x_new, logits, ys)
            increases += (loss_new > loss).float()
            improved = loss_new > f_max
            x_max[improved], f_max[improved], g_max[improved] = x_new[improved], loss_new[improved], \
                grad_new[improved]
            x_prev, x_k, grad, loss = x_k, x_new, grad_new, loss_new
            if k + 1 in checkpoints:
                span = k + 1 - last_check
                cond1 = increases < rho * span
                cond2 = (eta_at_check == eta) & (f_max_at_check == f_max)
                halve = cond1 | cond2
                eta[halve] /= 2.0
                x_k[halve], grad[halve] = x_max[halve], g_max[halve]
                x_prev[halve] = x_k[halve]
                increases.zero_()
                last_check, f_max_at_check, eta_at_check = k + 1, f_max.clone(), eta.clone()
        idx = todo.nonzero().flatten()
        best[idx[sub_broken]] = sub_best[sub_broken]
        broken[idx] |= sub_broken
    return best, broken


def run_attack(model: Any, x: Any, y: Any, spec: AttackSpec, gen: Any = None, batch_size: int = 512
               ) -> tuple[Any, Any]:
    """Run ``spec`` over ``(x, y)`` in batches; returns ``(x_adv, broken)`` for all samples."""
    t = torch()
    outs, masks = [], []
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if spec.name == "fgsm":
            adv, broken = fgsm(model, xb, yb, spec.epsilon, spec.norm)
        elif spec.name == "pgd":
            adv, broken = pgd(model, xb, yb, spec.epsilon, spec.norm, steps=spec.steps, restarts=spec.restarts,
                              step_size=spec.pgd_step(), gen=gen)
        elif spec.name == "apgd-ce":
            adv, broken = apgd_ce(model, xb, yb, spec.epsilon, spec.norm, steps=spec.steps, restarts=spec.restarts,
                                  gen=gen)
        elif spec.name in ART_ATTACKS:
            adv, broken = _run_art(model, xb, yb, spec, gen)
        else:
            raise UsageError(f"unknown attack {spec.name!r}; choose from {', '.join(ATTACKS + ART_ATTACKS)}")
        outs.append(adv)
        masks.append(broken)
    return t.cat(outs), t.cat(masks)


def _run_art(model: Any, x: Any, y: Any, spec: AttackSpec, gen: Any) -> tuple[Any, Any]:
    """ART's PGD or APGD-CE on one batch (seeded from ``gen``), as ``(x_adv, broken)`` tensors."""
    import numpy as np

    from qsafe.robustness import _art

    t = torch()
    _check(spec.norm, spec.epsilon)
    seed = int(t.randint(0, 2**31 - 1, (1,), generator=gen)) if gen is not None else 0
    xn, yn = x.detach().numpy(), y.numpy()
    if spec.name == "art-pgd":
        adv, broken = _art.pgd_examples(model, xn, yn, spec.epsilon, spec.norm, steps=spec.steps,
                                        restarts=spec.restarts, step_size=spec.pgd_step(), seed=seed)
    else:
        adv, broken = _art.apgd_examples(model, xn, yn, spec.epsilon, spec.norm, steps=spec.steps,
                                         restarts=spec.restarts, seed=seed)
    return t.from_numpy(np.ascontiguousarray(adv)), t.from_numpy(np.asarray(broken, dtype=bool))


ATTACKS = ("fgsm", "pgd", "apgd-ce")
ART_ATTACKS = ("art-pgd", "art-apgd-ce")
