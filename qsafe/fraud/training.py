"""The fraud model and its training: plain (Adam) or DP-SGD with Opacus, and the DP certificate.

The model is a small MLP (29 -> hidden, tanh -> 1 logit; no BatchNorm, which Opacus rejects). Its weights are
plain arrays (``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``; Opacus's ``_module.`` prefix removed),
saved as safetensors and scored with numpy: serving needs neither torch nor Opacus.

DP-SGD: Poisson sampling at rate ``q`` (Opacus's ``DPDataLoader``), per-example clipping to ``max_grad_norm``,
Gaussian noise ``sigma * max_grad_norm``; ``sigma`` is the smallest that keeps the accountant's epsilon at
``delta`` within the target for the planned steps. The epsilon in the certificate is the accountant's after the
steps actually taken (RDP by default; Opacus's PRV accountant is reported beside it as a cross-check).
The noise and the sampling are drawn from generators seeded from ``os.urandom`` and never recorded: a known seed
would let anyone subtract the noise. Opacus's ``secure_mode`` (a CSPRNG for the noise) needs torchcsprng, which
does not exist for torch 2.13: the certificate says so.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from qsafe.errors import FormatError, InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DPCertificate",
    "TrainConfig",
    "TrainedModel",
    "WeightsScorer",
    "epsilon_for",
    "load_weights",
    "predict_proba",
    "save_weights",
    "train_model",
]

WEIGHT_NAMES = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
ACCOUNTANTS = ("rdp", "prv")
#: RDP orders: Opacus's defaults stop at 63, below the optimum for sigma ~ 10 (a looser epsilon); extend them.
RDP_ALPHAS: tuple[float, ...] = (*(1 + x / 10.0 for x in range(1, 100)), *range(12, 64), *range(64, 1025, 8))


def _accountant_kwargs(accountant: str) -> dict[str, Any]:
    return {"alphas": list(RDP_ALPHAS)} if accountant == "rdp" else {}


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (fixed before any run: a search over them would spend privacy too).

    Attributes:
        target_epsilon: DP-SGD at this epsilon (at ``delta``); None trains without DP (Adam, mini-batches).
        delta: the DP delta (1e-5: below 1/n for the sample's 3,247 training rows).
        hidden: hidden units. epochs: passes (DP: ``epochs / sample_rate`` Poisson-sampled steps).
        sample_rate: DP Poisson sampling rate q. max_grad_norm: per-example clipping bound C.
        lr, momentum: DP-SGD step (SGD with momentum). batch_size, adam_lr: the non-DP trainer.
        weight_decay: non-DP L2 (0 lets the model over-fit, which the privacy audit's baseline wants).
        accountant: ``rdp`` (default) or ``prv``; the other is reported beside it.
        average_last: DP only: return the average of the weights over this last fraction of the steps (Polyak
            averaging; post-processing of the private iterates, so free in privacy). 0 returns the last iterate.
        seed: model initialisation and (non-DP) shuffling. DP noise and sampling never use it.
    """

    target_epsilon: float | None = 1.0
    delta: float = 1e-5
    hidden: int = 16
    epochs: int = 30
    sample_rate: float = 0.25
    max_grad_norm: float = 1.0
    lr: float = 0.15
    momentum: float = 0.9
    batch_size: int = 64
    adam_lr: float = 0.005
    weight_decay: float = 0.0
    accountant: str = "rdp"
    average_last: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target_epsilon is not None and not (0 < self.target_epsilon < 100):
            raise InvalidInputError(f"target_epsilon must be in (0, 100), not {self.target_epsilon}")
        if not 0 < self.delta < 1:
            raise InvalidInputError(f"delta must be in (0, 1), not {self.delta}")
        if not 0 <= self.average_last < 1:
            raise InvalidInputError(f"average_last must be in [0, 1), not {self.average_last}")
        if not 0 < self.sample_rate <= 1:
            raise InvalidInputError(f"sample_rate must be in (0, 1], not {self.sample_rate}")
        if self.accountant not in ACCOUNTANTS:
            raise InvalidInputError(f"accountant must be one of {ACCOUNTANTS}, not {self.accountant!r}")
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1 or self.max_grad_norm <= 0:
            raise InvalidInputError("hidden, epochs, batch_size and max_grad_norm must be positive")

    @property
    def batches_per_epoch(self) -> int:
        return max(1, round(1.0 / self.sample_rate))

    @property
    def q(self) -> float:
        """The Poisson sampling rate Opacus uses: ``1 / batches_per_epoch``."""
        return 1.0 / self.batches_per_epoch

    @property
    def steps(self) -> int:
        """DP-SGD steps: ``epochs * batches_per_epoch`` (each step samples every row with probability q)."""
        return self.epochs * self.batches_per_epoch


@dataclass(frozen=True)
class DPCertificate:
    """What DP-SGD guarantees for one training run (the signed DP certificate's predicate)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str
    epsilon_other: dict[str, float]
    training_rows: int
    details: dict[str, Any] = field(default_factory=dict)

    def predicate(self) -> dict[str, Any]:
        return {
            "mechanism": "DP-SGD (Gaussian, per-example clipping, Poisson sampling)",
            "epsilon": self.epsilon, "delta": self.delta, "sigma": self.noise_multiplier, "q": self.sample_rate,
            "steps": self.steps, "clip": self.max_grad_norm, "accountant": self.accountant,
            "epsilon_cross_check": dict(self.epsilon_other), "training_rows": self.training_rows,
            "unit": "one transaction (row); add/remove adjacency", **self.details,
        }


@dataclass
class TrainedModel:
    """Trained weights (numpy) and, for DP training, the certificate."""

    weights: dict[str, npt.NDArray[np.float32]]
    config: TrainConfig
    certificate: DPCertificate | None = None

    def predict_proba(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return predict_proba(self.weights, x)

    def logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return _logits(self.weights, x)


def _logits(weights: Mapping[str, npt.NDArray[Any]], x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    import numpy as np

    h = np.tanh(np.asarray(x, dtype=np.float64) @ weights["fc1.weight"].T.astype(np.float64)
                + weights["fc1.bias"].astype(np.float64))
    return np.asarray(h @ weights["fc2.weight"].T.astype(np.float64) + weights["fc2.bias"].astype(np.float64))[:, 0]


class WeightsScorer:
    """A picklable scorer over numpy weights (what worker processes and the scoring API call)."""

    def __init__(self, weights: Mapping[str, npt.NDArray[Any]]) -> None:
        self.weights = dict(weights)

    def __call__(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return predict_proba(self.weights, x)


def predict_proba(weights: Mapping[str, npt.NDArray[Any]], x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Fraud probability for each row of ``x`` (numpy only)."""
    import numpy as np

    z = _logits(weights, x)
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))  # a sigmoid that never overflows


def _imports() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the dev install has torch
        raise MissingDependencyError("training needs torch: pip install 'qsafe[fraud]' torch") from exc
    try:
        import opacus
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("DP-SGD needs Opacus: pip install 'qsafe[fraud]'") from exc
    return torch, opacus


def _module(torch: Any, hidden: int) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Linear(29, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def _weights_of(module: Any) -> dict[str, npt.NDArray[np.float32]]:
    import numpy as np

    state = {k.removeprefix("_module."): v for k, v in module.state_dict().items()}
    names = {"0.weight": "fc1.weight", "0.bias": "fc1.bias", "2.weight": "fc2.weight", "2.bias": "fc2.bias"}
    return {names[k]: np.ascontiguousarray(v.detach().cpu().numpy().astype(np.float32)) for k, v in state.items()}


def _train_plain(torch: Any, model: Any, x: Any, y: Any, cfg: TrainConfig) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    data = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.adam_lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(cfg.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb).squeeze(1), yb).backward()
            opt.step()


def epsilon_for(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """Epsilon at ``delta`` of ``steps`` Poisson-subsampled Gaussian steps, from Opacus's accountant.

    Raises:
        InvalidInputError: an unknown accountant name.
    """
    _, _opacus = _imports()
    from opacus.accountants import PRVAccountant, RDPAccountant

    classes = {"rdp": RDPAccountant, "prv": PRVAccountant}
    if accountant not in classes:
        raise InvalidInputError(f"accountant must be one of {sorted(classes)}, not {accountant!r}")
    acc = classes[accountant]()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    ctx = _quiet()
    try:
        return float(acc.get_epsilon(delta, **_accountant_kwargs(accountant)))
    finally:
        ctx.__exit__(None, None, None)


def _quiet() -> Any:
    """Silence Opacus's known, documented warnings (secure_mode off, backward hooks, RDP order range)."""
    import warnings

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    for pattern in ("Secure RNG turned off", "Full backward hook", "Optimal order is the"):
        warnings.filterwarnings("ignore", message=pattern)
    return ctx


def _train_dp(torch: Any, model: Any, x: Any, y: Any, cfg: TrainConfig) -> DPCertificate:
    ctx = _quiet()
    try:
        return _train_dp_quiet(torch, model, x, y, cfg)
    finally:
        ctx.__exit__(None, None, None)


def _train_dp_quiet(torch: Any, model: Any, x: Any, y: Any, cfg: TrainConfig) -> DPCertificate:
    from opacus import PrivacyEngine
    from opacus.accountants.utils import get_noise_multiplier
    from opacus.validators import ModuleValidator

    assert cfg.target_epsilon is not None
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise InvalidInputError(f"the model cannot be trained with DP-SGD: {errors[0]}")
    n = len(x)
    steps = cfg.steps
    sigma = float(get_noise_multiplier(target_epsilon=cfg.target_epsilon, target_delta=cfg.delta,
                                       sample_rate=cfg.q, steps=steps, accountant=cfg.accountant,
                                       **_accountant_kwargs(cfg.accountant)))
    torch.manual_seed(secrets.randbits(63))  # Poisson sampling: never the recorded seed
    noise = torch.Generator().manual_seed(secrets.randbits(63))
    data = torch.utils.data.TensorDataset(x, y)
    batch = -(-n // cfg.batches_per_epoch)  # ceil: exactly batches_per_epoch batches, so Opacus's q = cfg.q
    if -(-n // batch) != cfg.batches_per_epoch:
        raise InvalidInputError(f"{n} rows are too few for a sampling rate of {cfg.q:g}")
    loader = torch.utils.data.DataLoader(data, batch_size=batch)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    engine = PrivacyEngine(accountant=cfg.accountant)
    model, opt, loader = engine.make_private(module=model, optimizer=opt, data_loader=loader,
                                             noise_multiplier=sigma, max_grad_norm=cfg.max_grad_norm,
                                             poisson_sampling=True, noise_generator=noise)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    done = 0
    start_avg = int(steps * (1 - cfg.average_last))
    avg: dict[str, Any] | None = None
    while done < steps:
        for xb, yb in loader:
            if done >= steps:
                break
            opt.zero_grad()
            loss_fn(model(xb).squeeze(1), yb).backward()  # an empty Poisson batch: zero per-example gradients
            opt.step()  # ... and still a (noise-only) step, as the accountant assumes
            done += 1
            if cfg.average_last and done > start_avg:  # Polyak averaging: post-processing, no privacy cost
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if avg is None:
                    avg, count = state, 1
                else:
                    count += 1
                    for k in avg:
                        avg[k] += (state[k] - avg[k]) / count
    if avg is not None:
        model.load_state_dict(avg)
    q = float(loader.sample_rate)
    if abs(q - cfg.q) > 1e-12:  # pragma: no cover - guarded above
        raise InvalidInputError(f"Opacus sampled at {q}, not the planned {cfg.q}")
    epsilon = float(engine.accountant.get_epsilon(cfg.delta, **_accountant_kwargs(cfg.accountant)))
    other = "prv" if cfg.accountant == "rdp" else "rdp"
    import opacus

    return DPCertificate(
        epsilon=epsilon, delta=cfg.delta, noise_multiplier=sigma, sample_rate=q, steps=done,
        max_grad_norm=cfg.max_grad_norm, accountant=f"opacus-{opacus.__version__}/{cfg.accountant}",
        epsilon_other={f"opacus-{opacus.__version__}/{other}": epsilon_for(sigma, q, done, cfg.delta, other)},
        training_rows=n,
        details={"secure_mode": False,
                 "secure_mode_note": "Opacus secure_mode needs torchcsprng (none for torch 2.13): noise comes "
                                     "from torch's generator seeded from os.urandom, seed not recorded",
                 "rdp_orders": "Opacus defaults (1.1..63) extended by 64..1024 step 8" if cfg.accountant == "rdp"
                 else "n/a", "poisson_sampling": True, "optimizer": f"SGD(lr={cfg.lr}, momentum={cfg.momentum})",
                 "hyperparameters_fixed_before_training": True})


def train_model(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], config: TrainConfig | None = None
                ) -> TrainedModel:
    """Train the fraud MLP; with ``config.target_epsilon`` set, by DP-SGD with a certificate.

    Args:
        x: features (rows, 29) from :meth:`FraudData.features`.
        y: labels (0/1).
        config: hyper-parameters (default: DP-SGD at epsilon 1, delta 1e-5).

    Returns:
        The trained model (numpy weights) and its DP certificate (None without DP).

    Raises:
        InvalidInputError: empty data, wrong shapes, a single class.
        MissingDependencyError: torch or Opacus missing.
    """
    import numpy as np

    cfg = config or TrainConfig()
    if x.ndim != 2 or x.shape[1] != 29 or len(x) != len(y) or len(x) == 0:
        raise InvalidInputError(f"features must be (rows, 29) with one label per row, not {x.shape}/{y.shape}")
    if len(np.unique(y)) != 2:
        raise InvalidInputError("training needs both classes")
    torch, _ = _imports()
    torch.manual_seed(cfg.seed)
    model = _module(torch, cfg.hidden)
    xt = torch.tensor(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.tensor(np.asarray(y, dtype=np.float32))
    cert = None
    if cfg.target_epsilon is None:
        _train_plain(torch, model, xt, yt, cfg)
    else:
        cert = _train_dp(torch, model, xt, yt, cfg)
    weights = _weights_of(model)
    for name, w in weights.items():
        if not np.isfinite(w).all():
            raise InvalidInputError(f"training diverged ({name} is not finite); lower the learning rate")
    return TrainedModel(weights=weights, config=cfg, certificate=cert)


def save_weights(weights: Mapping[str, npt.NDArray[np.float32]], metadata: Mapping[str, str] | None = None) -> bytes:
    """The weights as safetensors bytes (names ``fc1.weight`` ...)."""
    from safetensors.numpy import save

    return bytes(save({k: weights[k] for k in WEIGHT_NAMES}, metadata=dict(metadata or {})))


def load_weights(tensors: Mapping[str, Any]) -> dict[str, npt.NDArray[np.float32]]:
    """Check loaded tensors (numpy arrays or torch tensors from the gate) and return numpy weights.

    Raises:
        FormatError: a missing tensor, wrong shapes, or non-finite values.
    """
    import numpy as np

    try:
        out = {k: np.asarray(tensors[k].numpy() if hasattr(tensors[k], "numpy") else tensors[k], dtype=np.float32)
               for k in WEIGHT_NAMES}
    except KeyError as exc:
        raise FormatError(f"not a fraud model: tensor {exc} is missing") from None
    hidden = out["fc1.weight"].shape[0] if out["fc1.weight"].ndim == 2 else -1
    shapes = {"fc1.weight": (hidden, 29), "fc1.bias": (hidden,), "fc2.weight": (1, hidden), "fc2.bias": (1,)}
    for k, shape in shapes.items():
        if out[k].shape != shape or not np.isfinite(out[k]).all():
            raise FormatError(f"not a fraud model: {k} has shape {out[k].shape} (want {shape}) or is not finite")
    return out


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as JSON-ready values."""
    return {k: v for k, v in asdict(cfg).items() if not (isinstance(v, float) and math.isnan(v))}
