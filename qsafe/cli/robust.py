"""``qsafe robust``: attack, harden and certify a classifier; report and sign the evaluation.

torch is imported only when a subcommand runs (``qsafe robust --help`` stays light).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import emit_json
from qsafe.cli._options import json_option, passphrase_file_option
from qsafe.errors import UsageError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            from qsafe._text import printable

            click.echo(f"qsafe: {printable(message)}", err=True)  # names a model file: one escaped line

    return say


def _setup(seed: int) -> None:
    from qsafe.robustness import seed_all, single_thread

    single_thread()
    seed_all(seed)


def _model_file(model: Path) -> Path:
    if model.is_file():
        return model
    found = sorted(model.glob("*.safetensors"))
    if len(found) != 1:
        raise UsageError(f"{model} must hold exactly one .safetensors file (found {len(found)})")
    return found[0]


def open_model(model: Path, signature: Path | None, keys: tuple[Path, ...], say: Callable[[str], None]
               ) -> tuple[Any, dict[str, Any], str | None]:
    """Verify MODEL against its signature when ``keys`` are given, then read the classifier.

    Returns:
        (model, info, ``sha256:`` root digest or None when not verified).
    """
    from qsafe.robustness.models import load_classifier

    digest = None
    if keys:
        from qsafe.bundle import default_signature_path
        from qsafe.policy import VerificationPolicy
        from qsafe.verifying import verify

        result = verify(model, signature or default_signature_path(model), list(keys), policy=VerificationPolicy())
        digest = result.model_digest
        say(f"verified {model} ({digest[:19]}…, signed by {result.key_id[:19]}…)")
    else:
        say(f"note: {model} was not verified (give --key to check its signature first)")
    net, info = load_classifier(_model_file(model))
    return net, info, digest


def model_options(func: Any) -> Any:
    func = click.option("--signature", type=_FILE, help="The model's signature bundle (default MODEL/model.sig).")(func)
    func = click.option("--key", "keys", multiple=True, type=click.Path(exists=True, path_type=Path),
                        help="Verify MODEL with this signer public key first (repeatable).")(func)
    func = click.argument("model", type=click.Path(exists=True, path_type=Path))(func)
    return func


def common_options(func: Any) -> Any:
    func = json_option("Print the results as JSON.")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")(func)
    func = click.option("--seed", type=int, default=0, show_default=True, help="Seeds every random choice.")(func)
    func = click.option("--samples", type=click.IntRange(min=1), help="Use the first N test images (default all "
                                                                      "360).")(func)
    return func


def _test_set(samples: int | None) -> Any:
    from qsafe.robustness.data import split_digits

    return split_digits()[1].head(samples)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def robust() -> None:
    """Adversarial robustness of the digits classifier (and the SMS-spam text classifier)."""


@robust.command()
@click.option("-o", "--output", type=_OUT, required=True, help="Where to write the model (.safetensors).")
@click.option("--recipe", type=click.Choice(["standard", "pgd", "trades", "noise"]), default="standard",
              show_default=True, help="standard, PGD adversarial training, TRADES, or Gaussian noise (smoothing).")
@click.option("--epsilon", type=float, default=0.1, show_default=True, help="L-inf radius for pgd/trades.")
@click.option("--sigma", type=float, default=0.25, show_default=True, help="Noise level for the noise recipe.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--width", type=click.IntRange(1, 16), default=1, show_default=True, help="CNN width multiplier.")
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--attack-steps", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--beta", type=float, default=6.0, show_default=True, help="TRADES weight.")
@click.option("--consistency", type=float, default=10.0, show_default=True, help="Noise recipe consistency weight.")
@click.option("--train-samples", type=click.IntRange(min=10), help="Train on the first N training images only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@json_option("Print the training summary as JSON.")
def train(output: Path, recipe: str, epsilon: float, sigma: float, epochs: int, width: int, lr: float,
          batch_size: int, attack_steps: int, beta: float, consistency: float, train_samples: int | None, seed: int,
          quiet: bool, as_json: bool) -> None:
    """Train a digits CNN with RECIPE and write it as safetensors (sign it with `qsafe sign`)."""
    from qsafe._io import check_writable
    from qsafe.robustness.data import split_digits
    from qsafe.robustness.evaluation import clean_accuracy
    from qsafe.robustness.models import parameter_count, save_classifier
    from qsafe.robustness.training import TrainConfig
    from qsafe.robustness.training import train as run_train

    check_writable(output)
    _setup(seed)
    say = _say(quiet)
    cfg = TrainConfig(recipe=recipe, epsilon=epsilon, sigma=sigma, epochs=epochs, width=width, lr=lr,
                      batch_size=batch_size, attack_steps=attack_steps, beta=beta, consistency=consistency, seed=seed)
    tr, te = split_digits()
    tr = tr.head(train_samples)
    net = run_train(tr.x, tr.y, cfg, progress=lambda e, n, loss: say(f"epoch {e}/{n} loss {loss:.4f}"))
    acc = clean_accuracy(net, te.x, te.y)
    info = {"recipe": cfg.as_dict(), "train": {"dataset": tr.name, "digest": tr.digest, "samples": len(tr.y)},
            "test_clean_accuracy": acc, "parameters": parameter_count(net)}
    save_classifier(net, output, width=width, info=info)
    say(f"wrote {output}: clean test accuracy {acc:.4f}, {info['parameters']} parameters")
    if as_json:
        emit_json({"output": str(output), **info})


@robust.command()
@model_options
@click.option("--attack", "attacks", multiple=True,
              type=click.Choice(["fgsm", "pgd", "apgd-ce", "art-pgd", "art-apgd-ce"]),
              help="Attack(s) to run (repeatable; default qsafe's three). art-* run ART 1.20.1's PGD / APGD-CE on the "
                   "same model (needs adversarial-robustness-toolbox).")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option("--epsilon", "epsilons", multiple=True, type=float, required=True, help="Radius (repeatable).")
@click.option("--steps", type=click.IntRange(min=1), help="Iterations (default PGD 40, APGD 100).")
@click.option("--restarts", type=click.IntRange(min=1), default=5, show_default=True)
@common_options
def attack(model: Path, signature: Path | None, keys: tuple[Path, ...], attacks: tuple[str, ...], norm: str,
           epsilons: tuple[float, ...], steps: int | None, restarts: int, samples: int | None, seed: int, quiet: bool,
           as_json: bool) -> None:
    """Attack MODEL on the digits test set; prints accuracy per attack and the worst case per epsilon."""
    from qsafe.robustness.attacks import AttackSpec
    from qsafe.robustness.evaluation import clean_accuracy, evaluate_attacks

    _setup(seed)
    say = _say(quiet)
    net, _, _ = open_model(model, signature, keys, say)
    data = _test_set(samples)
    names = attacks or ("fgsm", "pgd", "apgd-ce")
    specs = [AttackSpec(n, norm, e, steps=1 if n == "fgsm" else steps or (100 if n.endswith("apgd-ce") else 40),
                        restarts=1 if n == "fgsm" else restarts) for e in epsilons for n in names]
    results = evaluate_attacks(net, data.x, data.y, specs, seed=seed, progress=say)
    clean = clean_accuracy(net, data.x, data.y)
    if as_json:
        emit_json({"clean_accuracy": clean, "samples": len(data.y), "results": [r.as_dict() for r in results]})
        return
    click.echo(f"clean accuracy {clean:.4f} ({len(data.y)} samples)")
    for r in results:
        per = ", ".join(f"{a['name']} {a['accuracy']:.4f}" for a in r.attacks)
        click.echo(f"{norm} eps={r.epsilon:g}: worst-case robust accuracy {r.robust_accuracy:.4f} ({per})")


@robust.command()
@model_options
@click.option("--sigma", type=float, required=True, help="Noise level of the smoothed classifier.")
@click.option("--radius", "radii", multiple=True, type=float, help="Report certified accuracy at these L2 radii.")
@click.option("--n0", type=click.IntRange(min=1), default=100, show_default=True, help="Samples to pick the class.")
@click.option("--n", "n", type=click.IntRange(min=1), default=10_000, show_default=True, help="Samples to certify.")
@click.option("--alpha", type=float, default=0.001, show_default=True, help="Failure probability.")
@common_options
def certify(model: Path, signature: Path | None, keys: tuple[Path, ...], sigma: float, radii: tuple[float, ...],
            n0: int, n: int, alpha: float, samples: int | None, seed: int, quiet: bool, as_json: bool) -> None:
    """Certify MODEL smoothed with Gaussian noise SIGMA (Cohen et al.): radius per test image."""
    from qsafe.robustness.smoothing import ABSTAIN, certified_accuracy, certify_dataset

    _setup(seed)
    say = _say(quiet)
    net, _, _ = open_model(model, signature, keys, say)
    data = _test_set(samples)
    certs = certify_dataset(net, data.x, data.y, sigma, n0=n0, n=n, alpha=alpha, seed=seed,
                            progress=lambda i, t: say(f"certified {i}/{t}") if i % 50 == 0 or i == t else None)
    rows = [{"index": i, "label": int(lab), "prediction": c.label, "radius": c.radius, "p_lower": c.p_lower,
             "correct": c.label == int(lab)} for i, (c, lab) in enumerate(zip(certs, data.y))]
    accuracy = {f"{r:g}": certified_accuracy(certs, data.y, r) for r in radii}
    summary: dict[str, Any] = {"sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "samples": len(rows),
               "abstain_rate": sum(c.label == ABSTAIN for c in certs) / len(certs),
               "certified_accuracy": accuracy}
    if as_json:
        emit_json({**summary, "certificates": rows})
        return
    click.echo(f"sigma={sigma:g} n0={n0} n={n} alpha={alpha:g}: abstained on {summary['abstain_rate']:.4f}")
    for r, acc in accuracy.items():
        click.echo(f"certified accuracy at L2 radius {r}: {acc:.4f}")


@robust.command()
@model_options
@click.option("--sigma", type=float, required=True, help="Noise level of the smoothed classifier.")
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--alpha", type=float, default=0.001, show_default=True)
@click.option("--index", "indices", multiple=True, type=click.IntRange(min=0), help="Test image index (repeatable).")
@click.option("--input", "input_path", type=_FILE, help="A .npy array (n, 1, 8, 8) or (n, 64) in [0, 1] to classify.")
@common_options
def predict(model: Path, signature: Path | None, keys: tuple[Path, ...], sigma: float, n: int, alpha: float,
            indices: tuple[int, ...], input_path: Path | None, samples: int | None, seed: int, quiet: bool,
            as_json: bool) -> None:
    """Smoothed prediction with abstention (-1) for test images or a .npy file."""
    import numpy as np

    from qsafe.robustness import torch_module as torch
    from qsafe.robustness.smoothing import predict as smooth_predict

    _setup(seed)
    say = _say(quiet)
    net, _, _ = open_model(model, signature, keys, say)
    if input_path is not None:
        from qsafe.errors import FormatError, InvalidInputError

        try:
            x = np.load(input_path, allow_pickle=False).astype(np.float32).reshape(-1, 1, 8, 8)
        except (ValueError, OSError) as exc:
            raise FormatError(f"{input_path} is not a numeric .npy array of 8x8 images: {exc}") from exc
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise InvalidInputError(f"{input_path}: pixels must be finite and in [0, 1]")
        labels: list[int | None] = [None] * len(x)
    else:
        data = _test_set(samples)
        chosen = list(indices) or list(range(min(10, len(data.y))))
        if max(chosen) >= len(data.y):
            raise UsageError(f"--index must be below {len(data.y)}")
        x, labels = data.x[chosen], [int(data.y[i]) for i in chosen]
    gen = torch().Generator()
    gen.manual_seed(seed)
    xt = torch().from_numpy(np.ascontiguousarray(x))
    rows = [{"prediction": smooth_predict(net, xt[i], sigma, n=n, alpha=alpha, gen=gen), "label": labels[i]}
            for i in range(len(xt))]
    if as_json:
        emit_json({"sigma": sigma, "n": n, "alpha": alpha, "predictions": rows})
        return
    for i, row in enumerate(rows):
        shown = "abstain" if row["prediction"] == -1 else row["prediction"]
        click.echo(f"{i}: {shown}" + (f" (label {row['label']})" if row["label"] is not None else ""))


@robust.command()
@model_options
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option("--epsilon", "epsilons", multiple=True, type=float, help="Attack radius (repeatable).")
@click.option("--restarts", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--with-art", "with_art", is_flag=True,
              help="Also run ART 1.20.1's PGD-40 and APGD-CE-100 at each epsilon; an image is robust only if every "
                   "attack, qsafe's and ART's, fails (needs adversarial-robustness-toolbox).")
@click.option("--masking-epsilon", type=float, help="Also check accuracy falls to ~0 at this large epsilon.")
@click.option("--sigma", type=float, help="Certify the model smoothed with this noise level.")
@click.option("--radius", "radii", multiple=True, type=float, help="Certified radius to report (repeatable).")
@click.option("--n0", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--n", "n", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--alpha", type=float, default=0.001, show_default=True)
@click.option("--plot", "plot_path", type=_OUT, help="Write accuracy-vs-epsilon / certified-vs-radius plots (PNG).")
@click.option("-o", "--output", type=_OUT, help="Write the evaluation (signed with --sign, else the bare predicate).")
@click.option("--sign", "sign_key", type=_FILE, help="Evaluator's private key: sign the evaluation (needs --key).")
@passphrase_file_option("Passphrase of a protected --sign key.", exists=True)
@common_options
def report(model: Path, signature: Path | None, keys: tuple[Path, ...], norm: str, epsilons: tuple[float, ...],
           restarts: int, with_art: bool, masking_epsilon: float | None, sigma: float | None, radii: tuple[float, ...], n0: int,
           n: int, alpha: float, plot_path: Path | None, output: Path | None, sign_key: Path | None,
           passphrase_file: Path | None, samples: int | None, seed: int, quiet: bool, as_json: bool) -> None:
    """Evaluate MODEL (attacks, certification), print tables, plot, and write a signed evaluation."""
    from qsafe._io import atomic_output, check_writable, refuse_same_file
    from qsafe.robustness.report import evaluate, plot, table

    if not epsilons and not (sigma and radii):
        raise UsageError("nothing to evaluate: give --epsilon and/or --sigma with --radius")
    if sign_key is not None and (output is None or not keys):
        raise UsageError("--sign needs -o OUT and --key (the evaluation names the verified model's digest)")
    inputs = [p for p in (signature, sign_key, passphrase_file, *keys) if p is not None]
    for out in (output, plot_path):
        if out is not None:
            refuse_same_file(out, *inputs)
            if model.is_dir() and out.resolve().is_relative_to(model.resolve()):
                raise UsageError(f"{out} is inside the model folder {model}: writing it would change the model")
            check_writable(out)
    signing = None
    if sign_key is not None:
        from qsafe.cli._common import load_private_key

        signing = load_private_key(sign_key, passphrase_file)
    _setup(seed)
    say = _say(quiet)
    net, info, digest = open_model(model, signature, keys, say)
    data = _test_set(samples)
    dataset = {"name": data.name, "digest": data.digest, "samples": len(data.y),
               "split": "sklearn train_test_split(test_size=360, stratify=y, random_state=0) of load_digits, /16"}
    ev = evaluate(net, {"file": _model_file(model).name, "digest": digest, **info}, data.x, data.y, dataset=dataset,
                  norm=norm, epsilons=epsilons, restarts=restarts, art=with_art, sigma=sigma, radii=radii, n0=n0, n=n,
                  alpha=alpha, seed=seed, masking_epsilon=masking_epsilon, progress=say)
    if plot_path is not None:
        plot(ev, plot_path, title=f"{model.name}")
    if output is not None:
        if signing is not None and digest is not None:
            from qsafe.model_evidence import ROBUSTNESS_EVALUATION, sign_model_evidence

            data_out = sign_model_evidence(digest, ROBUSTNESS_EVALUATION, ev.predicate, signing,
                                           model_name=model.name)
        else:
            data_out = (json.dumps(ev.predicate, indent=2, sort_keys=True) + "\n").encode()
        with atomic_output(output) as handle:
            handle.write(data_out)
    if as_json:
        emit_json(ev.predicate)
    else:
        click.echo(table(ev))


@robust.command("text")
@click.option("--defense", "defenses", multiple=True, type=click.Choice(["none", "hardened"]),
              help="Which classifier(s) to attack (repeatable; default both).")
@click.option("--budget", type=click.IntRange(1, 10), default=5, show_default=True, help="Largest edit budget.")
@click.option("--samples", type=click.IntRange(min=1), help="Attack only the first N detected test spam messages.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Hardened model epochs.")
@click.option("--adversarial", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training spam re-attacked (greedy) per epoch for the hardened model.")
@click.option("--greedy-only", is_flag=True,
              help="Attack the hardened classifier with the greedy attack only (default: also the adaptive beam "
                   "attack, and report the worst case per message).")
@click.option("--beam", type=click.IntRange(min=1), default=8, show_default=True,
              help="Beam width of the adaptive attack.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@json_option("Print the results as JSON.")
def text_cmd(defenses: tuple[str, ...], budget: int, samples: int | None, epochs: int, adversarial: int,
             greedy_only: bool, beam: int, seed: int, quiet: bool, as_json: bool) -> None:
    """SMS spam evasion: attack success rate at edit budgets 1..BUDGET, undefended vs hardened.

    The hardened row is the worst case per message over the greedy attack and the adaptive attack (which knows the
    word recognition and searches edit sequences); the JSON lists each attack's own rates under ``attacks``."""
    from qsafe.robustness.text import run_text_scenario

    _setup(seed)
    say = _say(quiet)
    results = run_text_scenario(list(defenses) or ["none", "hardened"], budget=budget, samples=samples,
                                epochs=epochs, adversarial=adversarial, adaptive=not greedy_only, beam=beam,
                                seed=seed, progress=say)
    if as_json:
        emit_json(results)
        return
    click.echo(f"{'model':10} {'clean acc':>9}  " + "  ".join(f"ASR@{b}" for b in range(1, budget + 1)))
    for name, r in results["models"].items():
        click.echo(f"{name:10} {r['clean_accuracy']:9.4f}  " + "  ".join(f"{v:5.3f}" for v in r["success_rate"]))
        if "adaptive" in r["attacks"]:
            for attack in ("greedy", "adaptive"):
                click.echo(f"  {attack:18}  " + "  ".join(f"{v:5.3f}" for v in r["attacks"][attack]))
