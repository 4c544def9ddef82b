"""The one training loop every study uses.

:func:`fit` trains any ``nn.Module`` given a *step* function (batch -> dict with ``loss``) and an
optional *evaluate* function (model -> dict of validation metrics). It provides AdamW (or SGD)
with decoupled weight decay, warm-up and LR schedules, gradient clipping, AMP on CUDA, early
stopping on a monitored metric, per-epoch dvclive logging, a tqdm progress bar, self-describing
checkpoints and resume from the last checkpoint of an interrupted run.

Checkpoints are plain dicts of tensors and primitives, loadable with ``weights_only=True``::

    {"format": "geolab-checkpoint/1", "model_name": str, "model_kwargs": dict,
     "state_dict": dict, "params": dict, "extra": dict, "epoch": int, "metrics": dict}
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from geolab.common.io import atomic_save_torch
from geolab.common.live import log_metrics

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "geolab-checkpoint/1"

StepFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclasses.dataclass
class TrainConfig:
    """Knobs of the training loop. Study sections of params.yaml repeat these keys at top level.

    Attributes:
        epochs: maximum number of epochs.
        lr: peak learning rate.
        weight_decay: decoupled weight decay (not applied to biases and norm weights).
        optimizer: ``adamw``, ``adam`` or ``sgd`` (momentum 0.9, Nesterov).
        scheduler: ``constant``, ``cosine`` (to 0 over all steps), ``cosine_restarts`` (SGDR,
            period ``restart_epochs``), ``onecycle`` or ``plateau`` (ReduceLROnPlateau on
            ``monitor``). Linear warm-up over ``warmup_steps`` precedes all but ``onecycle``.
        warmup_steps: linear warm-up steps (optimizer steps, not epochs).
        restart_epochs: first period of ``cosine_restarts``, in epochs.
        plateau_patience: epochs without improvement before ``plateau`` lowers the LR.
        plateau_factor: the factor ``plateau`` multiplies the LR by.
        grad_clip: max global gradient norm; 0 disables clipping.
        amp: mixed precision on CUDA (bf16 where supported, else fp16 with a grad scaler).
        patience: early stopping after this many epochs without improvement; 0 disables it.
        min_delta: smallest change of ``monitor`` that counts as improvement.
        monitor: the metric that selects the best checkpoint, e.g. ``val/loss`` or ``val/f1``.
        mode: ``min`` or ``max``: the direction in which ``monitor`` improves.
        resume: save the full training state after every epoch, and resume an interrupted run
            from it when its params match.
        channels_last: keep the model and 4-D input batches in channels-last memory format
            (faster convolutions on CPU and on tensor cores; results are unchanged up to
            floating-point rounding).
        lr_mult: learning-rate multipliers by parameter-name prefix, e.g. ``{encoder: 0.1}``
            trains a pretrained encoder ten times slower than the rest; the longest matching
            prefix wins, other parameters get ``lr``. Every prefix must match a parameter.
        ema: decay of an exponential moving average of the weights (e.g. 0.99), updated after
            every optimizer step (with the usual warm-up ``min(ema, (1 + n) / (10 + n))``);
            validation and the saved checkpoints use the averaged weights. 0 disables it.
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.01
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    scheduler: Literal["constant", "cosine", "cosine_restarts", "onecycle", "plateau"] = "cosine"
    warmup_steps: int = 0
    restart_epochs: int = 1
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    grad_clip: float = 1.0
    amp: bool = True
    patience: int = 0
    min_delta: float = 0.0
    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    resume: bool = True
    channels_last: bool = False
    lr_mult: dict[str, float] = dataclasses.field(default_factory=dict)
    ema: float = 0.0

    #: The names ``monitor`` may take in a study: ``val/<key>`` of what its evaluate function
    #: returns, ``train/<key>`` of what its step returns (``fit`` also logs ``lr``). Empty:
    #: only the form ``val/<name>`` or ``train/<name>`` is checked.
    MONITORS: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Check the loop's values (the params loader and :func:`fit` call it).

        Raises:
            ValueError: a value out of its range, or a ``monitor`` the study does not log; the
                message starts with the key.
        """
        for key, low in [
            ("epochs", 1),
            ("restart_epochs", 1),
            ("warmup_steps", 0),
            ("patience", 0),
            ("plateau_patience", 0),
        ]:
            if getattr(self, key) < low:
                raise ValueError(f"{key}: must be >= {low}, got {getattr(self, key)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: must be a finite number > 0, got {self.lr}")
        for key in ("weight_decay", "min_delta"):
            if not (getattr(self, key) >= 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}: must be a finite number >= 0, got {getattr(self, key)}")
        if not self.grad_clip >= 0:
            raise ValueError(f"grad_clip: must be >= 0 (0: no clipping), got {self.grad_clip}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor: must be in (0, 1), got {self.plateau_factor}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: must be in [0, 1) (0: off), got {self.ema}")
        for prefix, mult in self.lr_mult.items():
            if not (mult >= 0 and math.isfinite(mult)):
                raise ValueError(f"lr_mult.{prefix}: must be a finite number >= 0, got {mult}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {self.mode!r}")
        split, _, name = self.monitor.partition("/")
        if self.monitor != "lr" and not (split in ("val", "train") and name):
            raise ValueError(
                f"monitor: expected val/<metric> or train/<metric>, got {self.monitor!r}"
            )
        if self.MONITORS and self.monitor not in (*self.MONITORS, "lr"):
            raise ValueError(
                f"monitor: {self.monitor!r} is not a metric of this study; "
                f"valid: {', '.join(self.MONITORS)}"
            )

    @classmethod
    def from_params(cls, params: Any) -> TrainConfig:
        """Pick the training-loop keys out of a study's params (a dataclass or mapping)."""
        get = params.get if isinstance(params, Mapping) else lambda k, d: getattr(params, k, d)
        return cls(**{f.name: get(f.name, f.default) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class CheckpointSpec:
    """What a checkpoint must carry to rebuild its model without the code that trained it.

    Attributes:
        path: where the best model is written (a DVC-tracked output, e.g. ``models/cls/model.pt``).
        model_name: the registry name of the model.
        model_kwargs: the kwargs that rebuild it: ``REGISTRY.build(model_name, **model_kwargs)``.
        params: the resolved params of the run (plain data).
        extra: anything else evaluate/predict needs (label map, normalisation, ...).
        resume_path: where the last-epoch checkpoint for resuming lives; default
            ``<path>.last.pt`` next to the model. Deleted when training ends normally.
    """

    path: Path
    model_name: str
    model_kwargs: dict[str, Any]
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    resume_path: Path | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.resume_path is None:
            self.resume_path = self.path.with_name(self.path.stem + ".last.pt")


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns."""

    best_epoch: int
    best_value: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor in a (nested) dict/list/tuple to ``device``.

    With ``channels_last``, 4-D floating-point tensors (image batches) are also put in
    channels-last memory format.
    """
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def train_loader(dataset: Any, batch_size: int, seed: int, **kwargs: Any) -> DataLoader:
    """The shuffled training loader every study uses: seeded order, seeded workers.

    The last incomplete batch is dropped when there is more than one batch (a batch of one
    breaks batch norm). ``kwargs`` go to :class:`~torch.utils.data.DataLoader`.
    """
    from geolab.common.runtime import worker_seed

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=worker_seed,
        drop_last=len(dataset) > batch_size,
        **kwargs,
    )


def param_groups(
    model: nn.Module, weight_decay: float, lr: float | None = None, lr_mult: Mapping | None = None
) -> list[dict[str, Any]]:
    """Split parameters into decayed (weights of dim >= 2) and not decayed (biases, norms).

    With ``lr`` and ``lr_mult`` (name prefix -> multiplier), each of the two is split again by
    multiplier and every group carries its ``lr``; the groups of multiplier 1 come first.

    Raises:
        ValueError: a prefix of ``lr_mult`` matches no parameter, or a multiplier is negative.
    """
    lr_mult = dict(lr_mult or {})
    for prefix, mult in lr_mult.items():
        if not mult >= 0:
            raise ValueError(f"lr_mult: {prefix} has multiplier {mult}; it must be >= 0")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in lr_mult:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ValueError(
                f"lr_mult: {prefix!r} matches no parameter of the model "
                f"(its top-level modules: {', '.join(tops)})"
            )

    def mult_of(name: str) -> float:
        hits = [k for k in lr_mult if name == k or name.startswith(k + ".")]
        return float(lr_mult[max(hits, key=len)]) if hits else 1.0

    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((mult_of(name), p.ndim >= 2), []).append(p)
    if lr_mult:
        order = sorted(groups, key=lambda k: (k[0] != 1.0, k[0], not k[1]))
    else:  # the plain two groups, even when one of them is empty
        order = [(1.0, True), (1.0, False)]
    out = []
    for mult, decayed in order:
        group: dict[str, Any] = {
            "params": groups.get((mult, decayed), []),
            "weight_decay": weight_decay if decayed else 0.0,
        }
        if lr is not None:
            group["lr"] = lr * mult
        out.append(group)
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg.optimizer`` (per-group LRs from ``cfg.lr_mult``)."""
    groups = param_groups(model, cfg.weight_decay, cfg.lr, cfg.lr_mult)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Build the per-step LR schedule (``plateau`` is stepped per epoch by :func:`fit`)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = max(0, cfg.warmup_steps)
    sched = torch.optim.lr_scheduler
    if cfg.scheduler == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
    if cfg.scheduler == "plateau":
        mode = cfg.mode
        return sched.ReduceLROnPlateau(
            optimizer, mode=mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    period = max(1, cfg.restart_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = step - warm
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t / max(1, total - warm))))
        if cfg.scheduler == "cosine_restarts":
            return 0.5 * (1 + math.cos(math.pi * (t % period) / period))
        return 1.0

    return sched.LambdaLR(optimizer, factor)


class _Amp:
    """Autocast + grad scaler on CUDA; a no-op elsewhere."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled and device.type == "cuda"
        bf16 = self.enabled and torch.cuda.is_bf16_supported()
        self.dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and not bf16)
        self.device_type = device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


class WeightEma:
    """An exponential moving average of a model's weights (and floating-point buffers).

    ``update`` after every optimizer step; ``applied`` swaps the averaged weights into the
    model for a ``with`` block (validation, saving) and puts the trained ones back after.
    Integer buffers (batch norm's step count) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema: the decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current weights."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value.detach(), 1 - decay)
            else:
                self.shadow[key].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """The averaged weights in ``model`` inside the block; the trained ones after it."""
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(trained)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: D102
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)


def fingerprint(params: Mapping[str, Any]) -> str:
    """A stable hash of resolved params: a resume checkpoint is used only if it matches."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fit(
    model: nn.Module,
    train_loader: Iterable,
    cfg: TrainConfig,
    step: StepFn,
    ckpt: CheckpointSpec,
    evaluate: EvalFn | None = None,
    live: Any | None = None,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[nn.Module, int], None] | None = None,
) -> FitResult:
    """Train ``model`` and write its best checkpoint to ``ckpt.path``.

    Args:
        model: the module; moved to ``device``.
        train_loader: an iterable of batches with ``len()`` (a DataLoader).
        cfg: the training-loop knobs.
        step: ``step(model, batch) -> {"loss": scalar tensor, ...}``; the batch is already on
            ``device``. Other scalar entries are averaged and logged as ``train/<key>``.
        ckpt: what the checkpoint carries, and where it goes.
        evaluate: ``evaluate(model) -> {"loss": ..., "f1": ...}``, called after each epoch in
            eval mode under ``no_grad``; logged as ``val/<key>``. Without it, ``monitor`` must be
            a ``train/`` metric.
        live: a ``dvclive.Live``; per-epoch metrics and the LR are logged to it.
        device: where to train.
        on_epoch: ``on_epoch(model, epoch)``, called at the start of every epoch after the
            model is put in train mode (e.g. to freeze a backbone for the first epochs); it is
            also called for the epochs a resumed run continues with.

    Returns:
        The best epoch and value of ``cfg.monitor``, epochs run, whether it stopped early, and
        the per-epoch history.

    Raises:
        ValueError: a value of ``cfg`` out of its range (:meth:`TrainConfig.validate`), before
            any work.
    """
    cfg.validate()
    device = torch.device(device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    state = _TrainState.create(model, cfg, ckpt, len(train_loader), device)  # type: ignore[arg-type]
    if cfg.resume:
        state.try_resume()
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        row = _train_epoch(state, train_loader, step, epoch, on_epoch)
        if evaluate is not None:
            with state.averaged():
                row.update(_run_eval(model, evaluate))
        row["lr"] = state.optimizer.param_groups[0]["lr"]
        state.end_epoch(epoch, row, live)
        if state.should_stop():
            log.info("early stopping at epoch %d (best %s)", epoch, state.best_epoch)
            break
    state.finish()
    return FitResult(state.best_epoch, state.best, state.epoch, state.stopped_early, state.history)


def _run_eval(model: nn.Module, evaluate: EvalFn) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        metrics = evaluate(model)
    return {f"val/{k}": float(v) for k, v in metrics.items()}


def _train_epoch(
    state: _TrainState,
    loader: Iterable,
    step: StepFn,
    epoch: int,
    on_epoch: Callable[[nn.Module, int], None] | None = None,
) -> dict:
    model, cfg = state.model, state.cfg
    model.train()
    if on_epoch is not None:
        on_epoch(model, epoch)
    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, mininterval=1.0)
    for batch in bar:
        out = state.optimize(step, to_device(batch, state.device, cfg.channels_last))
        count += 1
        for key, value in out.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        bar.set_postfix(loss=f"{sums['loss'] / count:.4f}")
    if count == 0:
        raise ValueError("the training loader produced no batches")
    return {f"train/{k}": v / count for k, v in sums.items()}


@dataclasses.dataclass
class _TrainState:
    """Everything that changes during training, and its (de)serialisation for resume."""

    model: nn.Module
    cfg: TrainConfig
    ckpt: CheckpointSpec
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp: _Amp
    device: torch.device
    ema: WeightEma | None = None
    epoch: int = 0
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    @classmethod
    def create(
        cls, model: nn.Module, cfg: TrainConfig, ckpt: CheckpointSpec, steps: int, device
    ) -> _TrainState:
        optimizer = build_optimizer(model, cfg)
        scheduler = build_scheduler(optimizer, cfg, steps)
        ema = WeightEma(model, cfg.ema) if cfg.ema else None
        return cls(model, cfg, ckpt, optimizer, scheduler, _Amp(device, cfg.amp), device, ema)

    def averaged(self) -> contextlib.AbstractContextManager:
        """The weights to validate and save: the moving average with ``ema``, else as trained."""
        return self.ema.applied(self.model) if self.ema else contextlib.nullcontext()

    def optimize(self, step: StepFn, batch: Any) -> dict[str, torch.Tensor]:
        """One optimizer step: forward under autocast, backward, clip, step, schedule."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.amp.autocast():
            out = step(self.model, batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch + 1}")
        self.amp.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.amp.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.amp.scaler.step(self.optimizer)
        self.amp.scaler.update()
        if self.cfg.scheduler != "plateau":
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim == 0}

    def end_epoch(self, epoch: int, row: dict[str, float], live: Any | None) -> None:
        """Track the best epoch, write checkpoints, log to dvclive."""
        self.epoch = epoch
        if self.cfg.monitor not in row:
            raise KeyError(
                f"monitor '{self.cfg.monitor}' is not among this epoch's metrics: {sorted(row)}"
            )
        value = row[self.cfg.monitor]
        if self.cfg.scheduler == "plateau":
            self.scheduler.step(value)
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            with self.averaged():
                save_checkpoint(self.ckpt, self.model, epoch, row)
        else:
            self.bad_epochs += 1
        self.history.append({"epoch": epoch, **row})
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
        if live is not None:
            log_metrics(live, row)
            live.next_step()
        if self.cfg.resume:
            atomic_save_torch(self._resume_state(), self.ckpt.resume_path)

    def _improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return not math.isnan(value)
        delta = self.cfg.min_delta
        return value < self.best - delta if self.cfg.mode == "min" else value > self.best + delta

    def should_stop(self) -> bool:
        self.stopped_early = 0 < self.cfg.patience <= self.bad_epochs
        return self.stopped_early

    def _resume_state(self) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint(self.ckpt.params),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.amp.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": torch.get_rng_state(),
            "py_rng": list(random.getstate()[1]),
            "progress": {
                "epoch": self.epoch,
                "best": self.best,
                "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
            },
            "history": self.history,
        }

    def try_resume(self) -> bool:
        """Restore an interrupted run whose params match; returns whether it did."""
        path = self.ckpt.resume_path
        if path is None or not path.exists():
            return False
        blob = torch.load(path, map_location=self.device, weights_only=True)
        if blob.get("fingerprint") != fingerprint(self.ckpt.params):
            log.info("ignoring %s: it was written with other params", path)
            return False
        self.model.load_state_dict(blob["model"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        self.amp.scaler.load_state_dict(blob["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(blob["ema"])
        torch.set_rng_state(blob["rng"].cpu())
        random.setstate((3, tuple(blob["py_rng"]), None))
        for key, value in blob["progress"].items():
            setattr(self, key, value)
        self.history = blob["history"]
        if not self.ckpt.path.exists():  # e.g. `dvc repro` removed the stage's outputs
            log.info("best checkpoint %s is gone: the next epoch becomes the best", self.ckpt.path)
            self.best, self.best_epoch = math.nan, 0
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True

    def finish(self) -> None:
        """Training ended normally: the resume checkpoint is no longer needed."""
        if self.ckpt.resume_path is not None:
            self.ckpt.resume_path.unlink(missing_ok=True)
        if self.best_epoch == 0:
            raise RuntimeError(f"no epoch produced a finite '{self.cfg.monitor}'")


def save_checkpoint(
    ckpt: CheckpointSpec, model: nn.Module, epoch: int, metrics: Mapping[str, float]
) -> None:
    """Write a self-describing checkpoint atomically (see the module docstring for its keys)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save_torch(
        {
            "format": CHECKPOINT_FORMAT,
            "model_name": ckpt.model_name,
            "model_kwargs": ckpt.model_kwargs,
            "state_dict": state,
            "params": ckpt.params,
            "extra": ckpt.extra,
            "epoch": epoch,
            "metrics": dict(metrics),
        },
        ckpt.path,
    )


def load_checkpoint(
    path: str | Path, build: Callable[..., nn.Module], device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a self-describing checkpoint.

    Args:
        path: the checkpoint written by :func:`fit`.
        build: ``build(model_name, **model_kwargs) -> nn.Module``, e.g. ``Registry.build``.
        device: where to put the model.

    Returns:
        The model in eval mode, and the checkpoint dict (params, extra, metrics, ...).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a geolab checkpoint, or one of a model ``build`` does not
            know (another study's); the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (run `dvc repro` first?)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise ValueError(
            f"{path}: not a geolab checkpoint (torch.load: {type(err).__name__}: {err})"
        ) from err
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a geolab checkpoint (format {CHECKPOINT_FORMAT})")
    try:
        model = build(blob["model_name"], **blob["model_kwargs"])
    except KeyError as err:
        raise ValueError(f"{path}: a checkpoint of another model: {err.args[0]}") from err
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), blob
