"""The shared training loop on a tiny separable toy problem (CPU, a few ms per epoch)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geolab.cls.config import ClsParams
from geolab.common.live import open_live
from geolab.common.registry import Registry
from geolab.common.train import (
    CHECKPOINT_FORMAT,
    CheckpointSpec,
    TrainConfig,
    WeightEma,
    _TrainState,
    build_optimizer,
    build_scheduler,
    fit,
    load_checkpoint,
    param_groups,
    to_device,
)

torch.set_num_threads(1)

MODELS: Registry[nn.Module] = Registry("toy model")


@MODELS.register("linear")
def linear(in_features: int = 2, out_features: int = 2) -> nn.Module:
    return nn.Linear(in_features, out_features)


MODEL_KWARGS = {"in_features": 2, "out_features": 2}


def toy_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in 2-D labelled by the side of the line x0 + x1 = 0 (linearly separable)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def loader(batch_size: int = 16) -> DataLoader:
    x, y = toy_data()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)


def ce_step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    logits = model(x)
    return {
        "loss": F.cross_entropy(logits, y),
        "acc": (logits.argmax(1) == y).float().mean(),
        "logits": logits,  # not a scalar: must not be logged
    }


def full_loss(model: nn.Module) -> float:
    x, y = toy_data()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def make_cfg(**overrides) -> TrainConfig:
    kw = dict(
        epochs=3,
        lr=0.1,
        weight_decay=0.0,
        scheduler="constant",
        grad_clip=0.0,
        amp=False,
        monitor="train/loss",
        mode="min",
        resume=True,
    )
    kw.update(overrides)
    return TrainConfig(**kw)


def make_ckpt(tmp_path, params=None) -> CheckpointSpec:
    return CheckpointSpec(
        tmp_path / "model.pt",
        "linear",
        dict(MODEL_KWARGS),
        params={"lr": 0.1} if params is None else params,
        extra={"classes": ["neg", "pos"]},
    )


def new_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS.build("linear", **MODEL_KWARGS)


def scripted(values):
    """An evaluate fn returning ``{"m": values[i]}`` on its i-th call."""
    it = iter(values)
    return lambda model: {"m": next(it)}


# --- fit and checkpoints --------------------------------------------------------------------------


def test_fit_lowers_loss_and_writes_rebuildable_checkpoint(tmp_path):
    model = new_model()
    before = full_loss(model)
    ckpt = make_ckpt(tmp_path)
    result = fit(model, loader(), make_cfg(epochs=5), ce_step, ckpt)

    assert result.epochs_run == 5 and not result.stopped_early
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    losses = [row["train/loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert full_loss(model) < 0.5 * before
    assert set(result.history[0]) == {"epoch", "train/loss", "train/acc", "lr"}
    assert result.history[-1]["train/acc"] > 0.9
    assert result.best_epoch == 5 and result.best_value == losses[-1]

    # self-describing, loadable with weights_only=True
    blob = torch.load(ckpt.path, weights_only=True)
    assert blob["format"] == CHECKPOINT_FORMAT
    assert blob["model_name"] == "linear"
    assert blob["model_kwargs"] == MODEL_KWARGS
    assert blob["params"] == {"lr": 0.1}
    assert blob["extra"] == {"classes": ["neg", "pos"]}
    assert blob["epoch"] == 5
    assert blob["metrics"]["train/loss"] == losses[-1]

    rebuilt, blob2 = load_checkpoint(ckpt.path, MODELS.build)
    assert isinstance(rebuilt, nn.Linear) and not rebuilt.training
    assert blob2["extra"] == blob["extra"]
    x, _ = toy_data()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    # normal finish: no resume file left behind
    assert not ckpt.resume_path.exists()
    assert ckpt.resume_path == tmp_path / "model.last.pt"


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", MODELS.build)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a geolab checkpoint"):
        load_checkpoint(tmp_path / "other.pt", MODELS.build)
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="text.pt: not a geolab checkpoint"):
        load_checkpoint(tmp_path / "text.pt", MODELS.build)
    blob = {"format": CHECKPOINT_FORMAT, "model_name": "geoloc_net", "model_kwargs": {}}
    torch.save(blob, tmp_path / "another_study.pt")
    with pytest.raises(ValueError, match="another_study.pt: a checkpoint of another model.*linear"):
        load_checkpoint(tmp_path / "another_study.pt", MODELS.build)


def test_empty_loader_raises(tmp_path):
    with pytest.raises(ValueError, match="no batches"):
        fit(new_model(), [], make_cfg(), ce_step, make_ckpt(tmp_path))


# --- early stopping and best-epoch selection ------------------------------------------------------


def test_early_stopping_constant_metric(tmp_path):
    cfg = make_cfg(epochs=10, patience=2, monitor="val/m")
    result = fit(new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted([1.0] * 10))
    assert result.stopped_early
    assert result.epochs_run == 3  # best at 1, then 2 epochs without improvement
    assert result.best_epoch == 1 and result.best_value == 1.0
    assert len(result.history) == 3
    assert not make_ckpt(tmp_path).resume_path.exists()


def test_early_stopping_worsening_metric(tmp_path):
    cfg = make_cfg(epochs=10, patience=3, monitor="val/m")
    values = [float(i) for i in range(10)]
    result = fit(new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted(values))
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 1


def test_no_early_stopping_when_patience_not_reached(tmp_path):
    cfg = make_cfg(epochs=4, patience=3, monitor="val/m")
    result = fit(new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted([1, 2, 3, 0.5]))
    assert not result.stopped_early and result.epochs_run == 4 and result.best_epoch == 4


@pytest.mark.parametrize(("mode", "best_epoch", "best"), [("max", 2, 0.9), ("min", 3, 0.3)])
def test_mode_picks_best_epoch(tmp_path, mode, best_epoch, best):
    cfg = make_cfg(epochs=4, monitor="val/m", mode=mode)
    ckpt = make_ckpt(tmp_path)
    result = fit(new_model(), loader(), cfg, ce_step, ckpt, scripted([0.5, 0.9, 0.3, 0.7]))
    assert (result.best_epoch, result.best_value) == (best_epoch, best)
    assert [row["val/m"] for row in result.history] == [0.5, 0.9, 0.3, 0.7]
    blob = torch.load(ckpt.path, weights_only=True)
    assert blob["epoch"] == best_epoch and blob["metrics"]["val/m"] == best


def test_min_delta(tmp_path):
    cfg = make_cfg(epochs=3, monitor="val/m", min_delta=0.1)
    result = fit(
        new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted([1.0, 0.95, 0.5])
    )
    assert result.best_epoch == 3  # 0.95 is not an improvement of more than 0.1


def test_nan_metric_never_best(tmp_path):
    cfg = make_cfg(epochs=3, monitor="val/m")
    result = fit(
        new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted([math.nan, 2.0, 3.0])
    )
    assert result.best_epoch == 2
    with pytest.raises(RuntimeError, match="no epoch produced a finite 'val/m'"):
        fit(
            new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path / "b"), scripted([math.nan] * 3)
        )


def test_missing_monitor_raises_key_error(tmp_path):
    cfg = make_cfg(monitor="val/f1")
    with pytest.raises(KeyError, match="val/f1"):
        fit(new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), lambda m: {"loss": 1.0})


def test_non_finite_loss_raises(tmp_path):
    def nan_step(model, batch):
        return {"loss": ce_step(model, batch)["loss"] * math.nan}

    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        fit(new_model(), loader(), make_cfg(), nan_step, make_ckpt(tmp_path))


def test_evaluate_runs_in_eval_mode_without_grad(tmp_path):
    seen = []

    def evaluate(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"loss": 1.0}

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    fit(model, loader(), make_cfg(epochs=2), ce_step, make_ckpt(tmp_path), evaluate)
    assert seen == [(False, False), (False, False)]


# --- optimizer, LR schedules, gradient clipping ---------------------------------------------------


def lr_trace(cfg: TrainConfig, steps_per_epoch: int, n: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=2, epochs=1, scheduler="cosine")
    lrs = lr_trace(cfg, steps_per_epoch=10, n=11)
    # linear warm-up over 2 steps, then cosine from 1 to 0 over the remaining 8 steps
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(9)]
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert lrs[6] == pytest.approx(0.5)  # halfway through the cosine
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)


def test_constant_with_and_without_warmup():
    assert lr_trace(TrainConfig(lr=0.3, scheduler="constant"), 5, 6) == pytest.approx([0.3] * 6)
    lrs = lr_trace(TrainConfig(lr=1.0, warmup_steps=4, scheduler="constant"), 5, 7)
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0])


def test_cosine_restarts_period():
    cfg = TrainConfig(lr=1.0, epochs=3, restart_epochs=1, scheduler="cosine_restarts")
    lrs = lr_trace(cfg, steps_per_epoch=4, n=12)
    c = math.cos(math.pi / 4)
    period = [1.0, 0.5 * (1 + c), 0.5, 0.5 * (1 - c)]
    assert lrs == pytest.approx(period * 3)
    cfg2 = TrainConfig(lr=1.0, epochs=4, restart_epochs=2, scheduler="cosine_restarts")
    lrs2 = lr_trace(cfg2, steps_per_epoch=2, n=8)
    assert lrs2 == pytest.approx(period * 2)


def test_onecycle_peaks_at_lr():
    cfg = TrainConfig(lr=0.8, epochs=2, scheduler="onecycle", warmup_steps=3)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    assert sched.total_steps == 20
    lrs = lr_trace(cfg, steps_per_epoch=10, n=20)
    assert max(lrs) == pytest.approx(0.8)
    assert lrs[0] < 0.1 and lrs[-1] < 0.01


def test_plateau_lowers_lr_after_patience():
    cfg = TrainConfig(lr=1.0, scheduler="plateau", plateau_patience=2, plateau_factor=0.5)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    lrs = []
    for _ in range(5):
        sched.step(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    # best at call 1, bad epochs 1, 2 (= patience), 3 (> patience: lower), then counting again
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5]


def test_plateau_in_fit_follows_mode(tmp_path):
    cfg = make_cfg(
        epochs=4, lr=1.0, scheduler="plateau", plateau_patience=1, monitor="val/m", mode="max"
    )
    result = fit(
        new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), scripted([0.5, 0.5, 0.5, 0.5])
    )
    # the LR is recorded before the epoch's plateau step; not stepped per batch
    assert [row["lr"] for row in result.history] == [1.0, 1.0, 1.0, 0.5]
    result = fit(
        new_model(),
        loader(),
        cfg,
        ce_step,
        make_ckpt(tmp_path / "b"),
        scripted([0.1, 0.2, 0.3, 0.4]),
    )
    assert [row["lr"] for row in result.history] == [1.0] * 4  # improving under mode=max


def test_grad_clip_caps_gradient_norm(tmp_path):
    x, _ = toy_data(8)

    def huge_step(model, batch):
        return {"loss": 1e6 * model(batch).sum()}

    def one_step(grad_clip: float) -> tuple[float, float]:
        model = new_model()
        before = [p.detach().clone() for p in model.parameters()]
        cfg = make_cfg(optimizer="sgd", lr=0.1, grad_clip=grad_clip)
        state = _TrainState.create(model, cfg, make_ckpt(tmp_path), 1, torch.device("cpu"))
        state.optimize(huge_step, x)
        grad_norm = torch.linalg.vector_norm(
            torch.cat([p.grad.ravel() for p in model.parameters()])
        )
        change = torch.linalg.vector_norm(
            torch.cat(
                [(p.detach() - b).ravel() for p, b in zip(model.parameters(), before, strict=True)]
            )
        )
        return float(grad_norm), float(change)

    grad_norm, change = one_step(0.5)
    assert grad_norm == pytest.approx(0.5, rel=1e-4)
    # first Nesterov SGD step moves by lr * (1 + momentum) * grad
    assert change == pytest.approx(0.1 * 1.9 * 0.5, rel=1e-4)
    grad_norm, change = one_step(0.0)  # clipping disabled
    assert grad_norm > 1e5 and change > 1e4


def test_param_groups_no_decay_for_biases_and_norms():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    model[2].bias.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.05)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([model[0].weight, model[2].weight])
    assert ids(no_decay["params"]) == ids([model[0].bias, model[1].weight, model[1].bias])
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)],
)
def test_build_optimizer(name, cls):
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, TrainConfig(optimizer=name, lr=0.2, weight_decay=0.1))
    assert type(opt) is cls
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 0.2 for g in opt.param_groups)
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]


def test_lr_mult_groups_by_longest_prefix():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)))
    cfg = TrainConfig(lr=0.1, weight_decay=0.05, lr_mult={"1": 0.5, "1.1": 0.0})
    opt = build_optimizer(model, cfg)
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert by_param[id(model[0].weight)] == (0.1, 0.05)  # no prefix: lr
    assert by_param[id(model[0].bias)] == (0.1, 0.0)
    assert by_param[id(model[1][0].weight)] == pytest.approx((0.05, 0.05))
    assert by_param[id(model[1][1].weight)] == (0.0, 0.05)  # "1.1" beats "1"
    assert by_param[id(model[1][1].bias)] == (0.0, 0.0)
    assert opt.param_groups[0]["lr"] == 0.1  # the logged LR is the base one
    assert len(by_param) == len(list(model.parameters()))
    # the schedule scales every group alike
    sched = build_scheduler(opt, TrainConfig(lr=0.1, lr_mult={"1": 0.5}, epochs=2), 5)
    for _ in range(5):
        opt.step()
        sched.step()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.0, 0.0, 0.025, 0.025, 0.05, 0.05])
    with pytest.raises(ValueError, match=r"lr_mult: 'encoder' matches no parameter.*: 0, 1"):
        param_groups(model, 0.0, 0.1, {"encoder": 0.1})
    with pytest.raises(ValueError, match="lr_mult: 1 has multiplier -1"):
        param_groups(model, 0.0, 0.1, {"1": -1})


def test_weight_ema_average_warmup_and_swap():
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    nn.init.constant_(model[0].weight, 0.0)
    ema = WeightEma(model, 0.5)
    nn.init.constant_(model[0].weight, 1.0)
    model[1].num_batches_tracked += 7
    ema.update(model)  # warm-up: decay min(0.5, 2 / 11)
    expected = 1 - 2 / 11
    assert float(ema.shadow["0.weight"]) == pytest.approx(expected)
    assert int(ema.shadow["1.num_batches_tracked"]) == 7  # copied, not averaged
    ema.update(model)  # min(0.5, 3 / 12) = 0.25
    expected = 0.25 * expected + 0.75
    assert float(ema.shadow["0.weight"]) == pytest.approx(expected)
    with ema.applied(model):
        assert model[0].weight.item() == pytest.approx(expected)
    assert model[0].weight.item() == 1.0  # the trained weights are back
    with pytest.raises(ValueError, match="ema: the decay must be in"):
        WeightEma(model, 1.0)


def test_fit_with_ema_validates_and_saves_the_average(tmp_path):
    seen = []

    def evaluate(m):
        loss = full_loss(m)
        seen.append((loss, {k: v.detach().clone() for k, v in m.state_dict().items()}))
        return {"loss": loss}

    model = new_model()
    ckpt = make_ckpt(tmp_path)
    cfg = make_cfg(epochs=3, monitor="val/loss", ema=0.9, resume=False)
    fit(model, loader(), cfg, ce_step, ckpt, evaluate)
    assert not torch.allclose(seen[-1][1]["weight"], model.weight)  # validation saw the average
    best = min(seen, key=lambda s: s[0])[1]
    blob = torch.load(ckpt.path, weights_only=True)
    for key, value in best.items():  # and the best epoch's average is what was saved
        torch.testing.assert_close(blob["state_dict"][key], value, rtol=0, atol=0)


def test_train_config_from_params():
    cls = ClsParams(lr=0.5, epochs=2, batch_size=8)
    cfg = TrainConfig.from_params(cls)
    assert type(cfg) is TrainConfig and cfg.lr == 0.5 and cfg.epochs == 2
    cfg = TrainConfig.from_params({"lr": 0.2, "batch_size": 8})
    assert cfg.lr == 0.2 and cfg.epochs == TrainConfig().epochs


# --- resume ---------------------------------------------------------------------------------------


class Counter:
    """Counts step/evaluate calls; evaluate raises on call ``crash_at`` (a simulated crash)."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.steps = 0
        self.evals = 0
        self.crash_at = crash_at

    def step(self, model, batch):
        self.steps += 1
        return ce_step(model, batch)

    def evaluate(self, model):
        self.evals += 1
        if self.evals == self.crash_at:
            raise RuntimeError("simulated crash")
        return {"loss": full_loss(model)}


@pytest.mark.parametrize("ema", [0.0, 0.8])
def test_resume_after_crash(tmp_path, ema):
    cfg = make_cfg(epochs=4, monitor="val/loss", ema=ema)
    data = loader()  # 4 batches per epoch

    ref = Counter()
    ref_model = new_model()
    torch.manual_seed(123)  # the shuffling draws from torch's global RNG
    ref_result = fit(ref_model, data, cfg, ref.step, make_ckpt(tmp_path / "ref"), ref.evaluate)

    first = Counter(crash_at=3)
    ckpt = make_ckpt(tmp_path)
    first_model = new_model()
    torch.manual_seed(123)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(first_model, data, cfg, first.step, ckpt, first.evaluate)
    assert first.steps == 3 * 4
    assert ckpt.resume_path.exists()
    saved = torch.load(ckpt.resume_path, weights_only=True)
    assert saved["progress"]["epoch"] == 2 and len(saved["history"]) == 2

    torch.manual_seed(999)  # the restarted process is in another RNG state
    second = Counter()
    model = new_model(seed=5)  # and starts from other weights
    result = fit(model, data, cfg, second.step, ckpt, second.evaluate)
    assert second.evals == 2 and second.steps == 2 * 4  # epochs 1 and 2 are not re-run
    assert result.epochs_run == 4
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.history[:2] == saved["history"]
    assert not ckpt.resume_path.exists()
    # weights, optimizer state and RNG were restored: identical to an uninterrupted run
    assert result.history == ref_result.history
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_no_resume_with_other_params(tmp_path):
    cfg = make_cfg(epochs=4, monitor="val/loss")
    first = Counter(crash_at=3)
    with pytest.raises(RuntimeError):
        fit(new_model(), loader(), cfg, first.step, make_ckpt(tmp_path), first.evaluate)
    assert make_ckpt(tmp_path).resume_path.exists()

    second = Counter()
    ckpt = make_ckpt(tmp_path, params={"lr": 0.2})
    result = fit(new_model(), loader(), cfg, second.step, ckpt, second.evaluate)
    assert second.evals == 4 and second.steps == 4 * 4
    assert result.epochs_run == 4 and len(result.history) == 4
    assert not ckpt.resume_path.exists()


def test_no_resume_when_disabled(tmp_path):
    cfg = make_cfg(epochs=3, monitor="val/loss")
    first = Counter(crash_at=2)
    with pytest.raises(RuntimeError):
        fit(new_model(), loader(), cfg, first.step, make_ckpt(tmp_path), first.evaluate)
    second = Counter()
    cfg = make_cfg(epochs=3, monitor="val/loss", resume=False)
    fit(new_model(), loader(), cfg, second.step, make_ckpt(tmp_path), second.evaluate)
    assert second.evals == 3


def test_resume_when_best_checkpoint_was_removed(tmp_path):
    cfg = make_cfg(epochs=4, monitor="val/m", mode="max")
    ckpt = make_ckpt(tmp_path)
    values = [0.9, 0.1]

    def crashing(model):
        if not values:
            raise RuntimeError("crash")
        return {"m": values.pop(0)}

    with pytest.raises(RuntimeError):
        fit(new_model(), loader(), cfg, ce_step, ckpt, crashing)
    ckpt.path.unlink()  # e.g. `dvc repro` removed the stage's outputs
    result = fit(new_model(), loader(), cfg, ce_step, ckpt, scripted([0.2, 0.3]))
    # the old best (0.9, epoch 1) has no file any more: the next epoch becomes the best
    assert result.best_epoch == 4 and result.best_value == 0.3
    assert torch.load(ckpt.path, weights_only=True)["epoch"] == 4


# --- dvclive and helpers --------------------------------------------------------------------------


def test_dvclive_logging(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # keep dvclive away from the project's git/DVC repo
    cfg = make_cfg(epochs=3, monitor="val/loss")
    with open_live(tmp_path / "live") as live:
        result = fit(
            new_model(), loader(), cfg, ce_step, make_ckpt(tmp_path), Counter().evaluate, live
        )

    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    last = result.history[-1]
    assert metrics["train"]["loss"] == pytest.approx(last["train/loss"])
    assert metrics["train"]["acc"] == pytest.approx(last["train/acc"])
    assert metrics["val"]["loss"] == pytest.approx(last["val/loss"])
    assert metrics["lr"] == pytest.approx(0.1)
    assert "logits" not in metrics["train"]

    rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().split("\n")
    rows = [r.split("\t") for r in rows if r]
    assert rows[0] == ["step", "loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(
        [row["train/loss"] for row in result.history]
    )
    val_rows = (tmp_path / "live" / "plots" / "metrics" / "val" / "loss.tsv").read_text()
    assert len(val_rows.strip().split("\n")) == 1 + 3


def test_to_device_nested():
    t = torch.ones(2)
    batch = {"a": [t, (t, 1)], "b": "name", "c": {"d": t}}
    moved = to_device(batch, torch.device("meta"))
    assert moved["a"][0].device.type == "meta"
    assert isinstance(moved["a"], list) and isinstance(moved["a"][1], tuple)
    assert moved["a"][1][0].device.type == "meta" and moved["a"][1][1] == 1
    assert moved["b"] == "name"
    assert moved["c"]["d"].device.type == "meta" and moved["c"]["d"].shape == (2,)
    assert t.device.type == "cpu"  # the input is not modified
    same = to_device(batch, torch.device("cpu"))
    assert same["a"][0] is t


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", 0),
        ("lr", 0.0),
        ("lr", -0.1),
        ("lr", math.nan),
        ("lr", math.inf),
        ("weight_decay", -0.1),
        ("weight_decay", math.inf),
        ("grad_clip", -1.0),
        ("grad_clip", math.nan),
        ("patience", -1),
        ("warmup_steps", -5),
        ("restart_epochs", 0),
        ("plateau_factor", 0.0),
        ("plateau_factor", 1.0),
        ("plateau_factor", 2.0),
        ("plateau_patience", -1),
        ("min_delta", -0.1),
        ("ema", 1.0),
        ("ema", -0.5),
        ("mode", "up"),
        ("monitor", "miou"),
        ("monitor", "val/"),
        ("monitor", "test/miou"),
    ],
)
def test_train_config_rejects_out_of_range_values_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"^{key}: "):
        TrainConfig(**{key: value}).validate()


@pytest.mark.parametrize("mult", [-1.0, math.nan, math.inf])
def test_train_config_rejects_bad_lr_multipliers(mult):
    with pytest.raises(ValueError, match=r"^lr_mult\.encoder: must be a finite number >= 0"):
        TrainConfig(lr_mult={"decoder": 2.0, "encoder": mult}).validate()


def test_train_config_accepts_the_edges_that_mean_off():
    # grad_clip 0 (no clipping), patience 0 (no early stopping), ema 0 (off), a frozen prefix
    TrainConfig(
        grad_clip=0.0, patience=0, ema=0.0, warmup_steps=0, lr_mult={"encoder": 0.0}
    ).validate()
    TrainConfig(monitor="train/loss").validate()
    TrainConfig(monitor="val/km/blend", mode="max").validate()


def test_fit_refuses_a_bad_config_before_any_work(tmp_path):
    ckpt = make_ckpt(tmp_path)
    with pytest.raises(ValueError, match="^epochs: must be >= 1, got 0"):
        fit(new_model(), loader(), make_cfg(epochs=0), ce_step, ckpt)
    assert not ckpt.path.exists() and not ckpt.resume_path.exists()


STUDY_SECTIONS = ["cls", "seg", "ner", "geoloc"]


@pytest.mark.parametrize("section", STUDY_SECTIONS)
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", -3, "epochs: must be >= 1, got -3"),
        ("lr", 0, "lr: must be a finite number > 0, got 0.0"),
        ("lr", ".nan", "lr: must be a finite number > 0, got nan"),
        ("weight_decay", -0.1, "weight_decay: must be a finite number >= 0"),
        ("plateau_factor", 2.0, "plateau_factor: must be in (0, 1), got 2.0"),
        ("ema", 1.0, "ema: must be in [0, 1)"),
        ("lr_mult", "{encoder: -1}", "lr_mult.encoder: must be a finite number >= 0"),
        ("monitor", "val/mIoU", "monitor: 'val/mIoU' is not a metric of this study; valid: "),
        ("batch_size", 0, "batch_size: must be >= 1, got 0"),
    ],
)
def test_loader_names_file_section_and_key_of_a_bad_training_value(
    tmp_path, section, key, value, message
):
    from geolab.common.params import ParamsError, load_section

    path = tmp_path / "params.yaml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    with pytest.raises(ParamsError) as err:
        load_section(section, path)
    assert str(err.value).startswith(f"{path}: {section}: {message}")


@pytest.mark.parametrize("section", ["cls", "ner"])
@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_label_smoothing_is_checked(tmp_path, section, value):
    from geolab.common.params import ParamsError, load_section

    path = tmp_path / "params.yaml"
    path.write_text(f"{section}:\n  label_smoothing: {value}\n")
    with pytest.raises(ParamsError, match=r"label_smoothing: must be in \[0, 1\)"):
        load_section(section, path)


@pytest.mark.parametrize("section", STUDY_SECTIONS)
def test_every_study_monitor_is_valid_for_its_own_default(tmp_path, section):
    from geolab.common.params import load_section, schema_for

    schema = schema_for(section)
    assert schema.MONITORS and all(m.startswith(("val/", "train/")) for m in schema.MONITORS)
    for monitor in schema.MONITORS:
        path = tmp_path / "params.yaml"
        path.write_text(f"{section}:\n  monitor: {monitor}\n")
        assert load_section(section, path).monitor == monitor


def test_ner_and_geoloc_monitors_match_what_their_evaluate_returns():
    from geolab.geoloc.config import GeolocParams
    from geolab.geoloc.train import PREDICTORS
    from geolab.ner.config import NerParams
    from geolab.ner.train import entity_scores

    ner_val = {f"val/{k}" for k in ["loss", *entity_scores([["O"]], [["O"]])]}
    assert {m for m in NerParams.MONITORS if m.startswith("val/")} == ner_val
    geoloc_km = {m for m in GeolocParams.MONITORS if m.startswith("val/km/")}
    assert geoloc_km == {f"val/km/{p}" for p in PREDICTORS}
