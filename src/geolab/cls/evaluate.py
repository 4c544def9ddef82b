"""Evaluating the patch classifier on the held-out test tiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from geolab.cls.data import CLASSES, PatchDataset  # noqa: E402
from geolab.cls.models import MODELS  # noqa: E402
from geolab.cls.train import predict_logits  # noqa: E402
from geolab.common.io import load_split  # noqa: E402
from geolab.common.metrics import confusion_matrix, scores_from_confusion  # noqa: E402
from geolab.common.train import load_checkpoint  # noqa: E402


def evaluate(
    model_path: str | Path, patches: str | Path, device: torch.device, split: str = "test"
) -> dict[str, Any]:
    """Predict one split and score it.

    Returns:
        ``{"scores": scores_from_confusion(...), "y_true", "y_pred", "x"}`` (arrays for plots).
    """
    model, _ = load_checkpoint(model_path, MODELS.build, device)
    x, y = load_split(patches, split)
    loader = DataLoader(PatchDataset(x, y), batch_size=256)
    pred = predict_logits(model, loader, device).argmax(1).numpy()
    cm = confusion_matrix(y, pred, len(CLASSES))
    return {"scores": scores_from_confusion(cm, CLASSES), "y_true": y, "y_pred": pred, "x": x}


def summary_metrics(scores: dict[str, Any]) -> dict[str, Any]:
    """The scalars logged as ``test/...``: accuracy, macro scores and per-class F1."""
    return {
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro"]["f1"],
        "macro_precision": scores["macro"]["precision"],
        "macro_recall": scores["macro"]["recall"],
        "f1": {c: s["f1"] for c, s in scores["per_class"].items()},
    }


def examples_figure(
    x: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, per_class: int = 4
) -> plt.Figure:
    """A grid of test patches, ``per_class`` per true class, titled true -> predicted.

    The same patches are shown every run (the first of each class in file order).
    """
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(1.8 * per_class, 1.9 * len(CLASSES)))
    for row, _ in enumerate(CLASSES):
        idx = np.flatnonzero(y_true == row)[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(idx):
                i = idx[col]
                ax.imshow(x[i])
                ok = y_pred[i] == y_true[i]
                ax.set_title(
                    f"{CLASSES[y_true[i]]}\n→ {CLASSES[y_pred[i]]}",
                    fontsize=8,
                    color="green" if ok else "red",
                )
    fig.suptitle("test patches: true → predicted", fontsize=10)
    fig.tight_layout()
    return fig
