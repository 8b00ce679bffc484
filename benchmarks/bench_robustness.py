"""qsafe.robustness beside ART 1.20.1 on the same digits CNN and test images, one torch thread, in one run.

Times (median of --reps) and strength of: PGD-40 L-inf eps=0.1, APGD-CE-100, PGD adversarial training (epochs of
PGD-10 at eps=0.1) and randomized-smoothing certification (sigma=0.25). Prints robust accuracy under each engine
(qsafe's must be <= ART's + 1 point) and the time ratio qsafe/ART.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_robustness.py [--reps 3] [--samples 360] [--model FILE]

On a shared machine absolute times are pessimistic; the ratios in the same run are the figures to quote.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsafe.robustness import _art
from qsafe.robustness.attacks import AttackSpec, run_attack
from qsafe.robustness.data import split_digits
from qsafe.robustness.models import build_cnn, load_classifier
from qsafe.robustness.smoothing import certified_accuracy, certify_dataset
from qsafe.robustness.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parent / "examples" / "adversarial_digits" / "models" / "standard.safetensors"


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def ours_attack(model: Any, x: np.ndarray, y: np.ndarray, spec: AttackSpec) -> float:
    gen = torch.Generator()
    gen.manual_seed(0)
    _, broken = run_attack(model, torch.from_numpy(x), torch.from_numpy(y), spec, gen=gen)
    return 1.0 - float(broken.float().mean())


def art_train(x: np.ndarray, y: np.ndarray, epochs: int) -> Any:
    from art.defences.trainer import AdversarialTrainerMadryPGD

    torch.manual_seed(0)
    model = build_cnn(1)
    clf = _art.classifier(model)
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=epochs, batch_size=64, eps=0.1, eps_step=0.025, max_iter=10)
    trainer.fit(x, y)
    return model.eval()


def art_certify(model: Any, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    np.random.seed(0)
    rs = PyTorchRandomizedSmoothing(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                    nb_classes=10, device_type="cpu", sample_size=100, scale=0.25, alpha=0.001)
    return rs.certify(x, n=n, batch_size=1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=360)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--certify-samples", type=int, default=60)
    parser.add_argument("--certify-n", type=int, default=2000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tr, te = split_digits()
    x, y = te.x[: args.samples], te.y[: args.samples]
    if args.model.exists():
        model, _ = load_classifier(args.model)
    else:
        print(f"{args.model} missing: training a standard model for 20 epochs")
        model = train(tr.x, tr.y, TrainConfig(epochs=20))
    print(f"load average {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}; {len(y)} test images")
    rows: list[tuple[str, float, float, str]] = []
    print(f"{'task':34} {'qsafe s':>9} {'ART s':>9} {'ratio':>7}  check", flush=True)

    def row(name: str, a: float, b: float, note: str) -> None:
        rows.append((name, a, b, note))
        print(f"{name:34} {a:9.2f} {b:9.2f} {a / b:7.2f}  {note}", flush=True)

    for name, spec, peer in (
        ("PGD-40 linf 0.1", AttackSpec("pgd", "linf", 0.1, steps=40), lambda: _art.pgd(model, x, y, 0.1, steps=40)),
        ("APGD-CE-100 linf 0.1", AttackSpec("apgd-ce", "linf", 0.1, steps=100),
         lambda: _art.apgd(model, x, y, 0.1, steps=100)),
    ):
        t_ours, acc_ours = timed(lambda spec=spec: ours_attack(model, x, y, spec), args.reps)
        t_art, acc_art = timed(peer, args.reps)
        row(name, t_ours, t_art, f"robust acc qsafe {acc_ours:.4f} / ART {acc_art:.4f}")
    cfg = TrainConfig(recipe="pgd", epsilon=0.1, epochs=args.train_epochs, warmup=0.0, attack_steps=10)
    t_ours, m_ours = timed(lambda: train(tr.x, tr.y, cfg), 1)
    t_art, m_art = timed(lambda: art_train(tr.x, tr.y, args.train_epochs), 1)
    pgd40 = AttackSpec("pgd", "linf", 0.1)
    note = (f"PGD-40 robust acc qsafe-trained {ours_attack(m_ours, x, y, pgd40):.4f} / "
            f"ART-trained {ours_attack(m_art, x, y, pgd40):.4f}")
    row(f"PGD-AT {args.train_epochs} epochs", t_ours, t_art, note)
    xc, yc = x[: args.certify_samples], y[: args.certify_samples]
    t_ours, certs = timed(lambda: certify_dataset(model, xc, yc, 0.25, n0=100, n=args.certify_n), args.reps)
    t_art, (pred, radius) = timed(lambda: art_certify(model, xc, args.certify_n), args.reps)
    art_acc = float(np.mean((pred == yc) & (radius >= 0.25)))
    row(f"certify sigma=0.25 n={args.certify_n} x{len(yc)}", t_ours, t_art,
        f"certified acc r=0.25 qsafe {certified_accuracy(certs, yc, 0.25):.4f} / ART {art_acc:.4f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
