"""Training the patch classifier with the common loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from geolab.cls.config import ClsParams
from geolab.cls.data import CLASSES, PatchDataset
from geolab.cls.models import MODELS
from geolab.common.io import load_split
from geolab.common.params import to_dict
from geolab.common.train import CheckpointSpec, FitResult, TrainConfig, fit
from geolab.common.train import train_loader as make_train_loader


def make_step(label_smoothing: float) -> Any:
    """The step function: cross-entropy of the logits, plus batch accuracy for the log."""
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
        x, y = batch
        logits = model(x)
        return {"loss": loss_fn(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}

    return step


def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device) -> torch.Tensor:
    """Logits ``(N, C)`` for every batch of a loader, in order (model in eval mode)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x.to(device)).float().cpu() for x, _ in loader])


def make_evaluate(loader: DataLoader, device: torch.device) -> Any:
    """Validation: loss and accuracy over a loader."""
    labels = torch.cat([y for _, y in loader])

    def evaluate(model: nn.Module) -> dict[str, float]:
        logits = predict_logits(model, loader, device)
        loss = nn.functional.cross_entropy(logits, labels)
        return {"loss": float(loss), "accuracy": float((logits.argmax(1) == labels).float().mean())}

    return evaluate


def train(
    params: ClsParams,
    patches: str | Path,
    model_out: str | Path,
    device: torch.device,
    live: Any = None,
    seed: int = 0,
    resolved: dict | None = None,
) -> FitResult:
    """Train the classifier named by ``params.model`` on the ``train`` patches.

    Args:
        params: the ``cls`` section.
        patches: the ``.npz`` written by ``cls_prepare``.
        model_out: where the best checkpoint goes.
        device: where to train.
        live: the stage's dvclive logger.
        seed: seeds the DataLoader shuffling.
        resolved: all resolved params to store in the checkpoint (default: the ``cls`` section).

    Returns:
        The :class:`~geolab.common.train.FitResult`.
    """
    x_tr, y_tr = load_split(patches, "train")
    x_va, y_va = load_split(patches, "val")
    train_loader = make_train_loader(
        PatchDataset(x_tr, y_tr, augment=True), params.batch_size, seed
    )
    val_loader = DataLoader(PatchDataset(x_va, y_va), batch_size=256)
    kwargs = {"num_classes": len(CLASSES), **params.model_kwargs}
    model = MODELS.build(params.model, **kwargs)
    ckpt = CheckpointSpec(
        path=Path(model_out),
        model_name=params.model,
        model_kwargs=kwargs,
        params=resolved or {"cls": to_dict(params)},
        extra={"classes": list(CLASSES), "class_counts": np.bincount(y_tr, minlength=5).tolist()},
    )
    return fit(
        model,
        train_loader,
        TrainConfig.from_params(params),
        make_step(params.label_smoothing),
        ckpt,
        evaluate=make_evaluate(val_loader, device),
        live=live,
        device=device,
    )
