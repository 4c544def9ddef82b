"""Training the segmentation model with the common loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from geolab.common.io import load_split
from geolab.common.metrics import confusion_matrix, scores_from_confusion
from geolab.common.params import to_dict
from geolab.common.train import CheckpointSpec, FitResult, TrainConfig, fit, to_device
from geolab.common.train import train_loader as make_train_loader
from geolab.seg.config import SegParams
from geolab.seg.data import CLASSES, IGNORE, class_frequencies
from geolab.seg.models import MODELS

MEAN, STD = 0.5, 0.5  # plain models: [0, 1] -> [-1, 1]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def normalisation(model_name: str) -> tuple[Any, Any]:
    """``(mean, std)`` of the input normalisation: ImageNet's for pretrained encoders."""
    if model_name == "unet_pretrained":
        return IMAGENET_MEAN, IMAGENET_STD
    return MEAN, STD


REAL = len(CLASSES) - 1  # the 5 real classes; "unlabeled" is last


class PatchDataset(Dataset):
    """Normalised patches with flips, 90° rotations and colour jitter (when augmenting)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        augment: bool = False,
        jitter: float = 0.0,
        mean: Any = MEAN,
        std: Any = STD,
    ):
        self.x, self.y, self.augment, self.jitter = x, y, augment, jitter
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.x[i]).permute(2, 0, 1).float() / 255
        y = torch.from_numpy(self.y[i].astype(np.int64))
        if self.augment:
            x, y = _augment(x, y, self.jitter)
        return (x - self.mean) / self.std, y


def _augment(x: torch.Tensor, y: torch.Tensor, jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(4, ()))
    x, y = torch.rot90(x, k, (1, 2)), torch.rot90(y, k, (0, 1))
    if torch.rand(()) < 0.5:
        x, y = x.flip(2), y.flip(1)
    if jitter > 0:
        b, c, s = (1 + jitter * (2 * torch.rand(3) - 1)).tolist()
        grey = x.mean(0, keepdim=True)
        x = (grey + s * (x - grey)) * b
        x = (x - x.mean()) * c + x.mean()
        x = x.clamp(0, 1)
    return x.contiguous(), y.contiguous()


def class_weights(y: np.ndarray, mode: str) -> torch.Tensor | None:
    """``inverse_sqrt``: weights ∝ 1/sqrt(frequency), mean 1 over present classes."""
    if mode == "none":
        return None
    freq = np.array(list(class_frequencies(y).values()))
    w = np.where(freq > 0, 1 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
    return torch.tensor(w / w[w > 0].mean(), dtype=torch.float32)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft multi-class Dice loss over labelled pixels, averaged over classes present."""
    valid = (target != IGNORE).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = nn.functional.one_hot(target.clamp_max(logits.shape[1] - 1), logits.shape[1])
    onehot = onehot.permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + 1) / (total + 1)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def make_loss(terms: list[str], weights: torch.Tensor | None, gamma: float) -> Callable:
    """Sum of the named terms: ``ce``, ``dice``, ``focal`` (ignore index skipped)."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = weights.to(logits.device) if weights is not None else None
        total = logits.new_zeros(())
        if "ce" in terms:
            total = total + nn.functional.cross_entropy(logits, target, w, ignore_index=IGNORE)
        if "focal" in terms:
            ce = nn.functional.cross_entropy(
                logits, target, w, ignore_index=IGNORE, reduction="none"
            )
            pt = torch.exp(
                -nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
            )
            valid = target != IGNORE
            total = total + ((1 - pt) ** gamma * ce)[valid].mean()
        if "dice" in terms:
            total = total + dice_loss(logits, target)
        return total

    return loss


def divisor(model_name: str, kwargs: dict[str, Any]) -> int:
    """What H and W must be multiples of for this model."""
    return 2 ** kwargs.get("depth", 4) if model_name == "unet" else 32


def miou_scores(cm: np.ndarray) -> dict[str, float]:
    """Mean IoU over the 5 real classes (the gated one) and pixel accuracy, from a 6x6 matrix.

    Per-class IoU comes from the full matrix, so a pixel predicted ``unlabeled`` still counts
    against its true class; classes absent from both truth and prediction are left out.
    """
    scores = scores_from_confusion(cm, CLASSES)
    ious = [scores["per_class"][c]["iou"] for c in CLASSES[:REAL]]
    present = [v for v in ious if not np.isnan(v)]
    return {
        "miou": float(np.mean(present)) if present else 0.0,
        "pixel_accuracy": scores["accuracy"],
    }


def make_evaluate(loader: DataLoader, loss_fn: Callable, device: torch.device) -> Callable:
    """Validation: loss, pixel accuracy and mIoU over the 5 real classes, on patches."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        cm = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
        losses = []
        for batch in loader:
            x, y = to_device(batch, device)
            logits = model(x)
            losses.append(float(loss_fn(logits, y)))
            cm += confusion_matrix(
                y.cpu().numpy(), logits.argmax(1).cpu().numpy(), len(CLASSES), ignore_index=IGNORE
            )
        return {"loss": float(np.mean(losses)), **miou_scores(cm)}

    return evaluate


def train(
    params: SegParams,
    patches: str | Path,
    model_out: str | Path,
    device: torch.device,
    live: Any = None,
    seed: int = 0,
    resolved: dict | None = None,
) -> FitResult:
    """Train ``params.model`` on the train patches; select on validation mIoU (5 classes)."""
    x_tr, y_tr = load_split(patches, "train")
    x_va, y_va = load_split(patches, "val")
    mean, std = normalisation(params.model)
    train_loader = make_train_loader(
        PatchDataset(x_tr, y_tr, augment=True, jitter=params.jitter, mean=mean, std=std),
        params.batch_size,
        seed,
    )
    val_loader = DataLoader(
        PatchDataset(x_va, y_va, mean=mean, std=std), batch_size=params.batch_size
    )
    kwargs = {"num_classes": len(CLASSES), **params.model_kwargs}
    model = MODELS.build(params.model, **kwargs)
    loss_fn = make_loss(params.loss, class_weights(y_tr, params.class_weights), params.focal_gamma)
    ckpt = CheckpointSpec(
        path=Path(model_out),
        model_name=params.model,
        model_kwargs={**kwargs, "weights": "none"} if params.model == "unet_pretrained" else kwargs,
        params=resolved or {"seg": to_dict(params)},
        extra={
            "classes": list(CLASSES),
            "ignore_index": IGNORE,
            "mean": mean,
            "std": std,
            "scale": params.scale,
            "infer_scales": list(params.infer_scales or [params.scale]),
            "divisor": divisor(params.model, kwargs),
        },
    )

    def step(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": loss_fn(m(x), y)}

    return fit(
        model,
        train_loader,
        TrainConfig.from_params(params),
        step,
        ckpt,
        evaluate=make_evaluate(val_loader, loss_fn, device),
        live=live,
        device=device,
    )
