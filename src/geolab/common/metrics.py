"""Metrics from a confusion matrix, shared by the classification-like studies."""

from __future__ import annotations

import numpy as np


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Count ``(true, predicted)`` pairs.

    Args:
        y_true: integer labels, any shape.
        y_pred: integer predictions, same shape.
        num_classes: C.
        ignore_index: a label value whose entries are skipped.

    Returns:
        ``(C, C)`` int64 matrix; rows are true classes, columns predictions.
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} entries but y_pred has {y_pred.size}")
    keep = y_true != ignore_index if ignore_index is not None else slice(None)
    t, p = y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= num_classes or p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def scores_from_confusion(cm: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict:
    """Per-class precision, recall, F1 and IoU, their macro means, and accuracy.

    A class with no true and no predicted samples gets NaN scores and is left out of the macro
    means.

    Returns:
        ``{"accuracy": a, "macro": {"precision", "recall", "f1", "iou"}, "per_class": {name:
        {...}}}``.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    pred, true = cm.sum(0), cm.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, np.where(true > 0, 0.0, np.nan))
        recall = np.where(true > 0, tp / true, np.where(pred > 0, 0.0, np.nan))
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
        union = pred + true - tp
        iou = np.where(union > 0, tp / union, np.nan)
    per = {"precision": precision, "recall": recall, "f1": f1, "iou": iou}
    return {
        "accuracy": float(tp.sum() / cm.sum()) if cm.sum() else float("nan"),
        "macro": {
            k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            for k, v in per.items()
        },
        "per_class": {c: {k: float(v[i]) for k, v in per.items()} for i, c in enumerate(classes)},
    }
