"""Evaluating the segmentation model on whole Dubai tiles: pixel metrics and figures.

Metrics are computed over every labelled pixel of the given images at their original
resolution (masks read with :func:`geolab.datasets.dubai.read_mask`; pixels of the ignore index
are skipped). mIoU is reported over the 5 real classes (building, land, road, vegetation,
water; the one that is gated) and over all 6 (with ``unlabeled``). A class with no true and no
predicted pixel has an undefined (NaN) IoU and is left out of the means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from torch import nn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from geolab.common.metrics import confusion_matrix, scores_from_confusion  # noqa: E402
from geolab.datasets import dubai  # noqa: E402
from geolab.seg.infer import colour_mask, predict_tile  # noqa: E402

CLASSES = dubai.CLASSES
IGNORE = dubai.IGNORE_INDEX
#: The classes of mIoU-5 (``unlabeled`` is a class of the masks, but not a land-cover class).
REAL_CLASSES: tuple[str, ...] = tuple(c for c in CLASSES if c != "unlabeled")


def select_tiles(samples: Sequence[dubai.Sample], tiles: Sequence[int]) -> list[dubai.Sample]:
    """The samples of the given tiles, sorted by tile and image name.

    Raises:
        ValueError: a tile has no samples (names the tiles).
    """
    chosen = sorted((s for s in samples if s.tile in set(tiles)), key=_key)
    missing = set(tiles) - {s.tile for s in chosen}
    if missing:
        raise ValueError(f"tiles {sorted(missing)} are not in the data")
    return chosen


def pick_examples(samples: Sequence[dubai.Sample], n: int = 10) -> list[dubai.Sample]:
    """The same ``n`` samples every run: the first ``n`` by tile and image name."""
    return sorted(samples, key=_key)[:n]


def _key(sample: dubai.Sample) -> tuple[int, str]:
    return sample.tile, sample.image.name


def evaluate_tiles(
    model: nn.Module,
    extra: Mapping[str, Any],
    samples: Sequence[dubai.Sample],
    window: int = 512,
    overlap: int = 128,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    keep_predictions: bool = False,
    tta: bool = False,
    scales: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Predict whole tiles with :func:`~geolab.seg.infer.predict_tile` and score every pixel.

    Args:
        model: the segmentation model (on ``device``).
        extra: the checkpoint's ``extra`` (classes, normalisation, scale, divisor).
        samples: the images to score, at their original size.
        window: window side in model pixels, passed to ``predict_tile``.
        overlap: overlap of neighbouring windows, passed to ``predict_tile``.
        batch_size: windows per forward pass.
        device: where the model runs.
        keep_predictions: also return the ``(H, W)`` class maps (memory: one byte per pixel).
        tta: flip test-time augmentation (see ``predict_proba_tile``).
        scales: inference scales (see ``predict_tile``; default: the checkpoint's).

    Returns:
        ``{"confusion": (C, C) int64 (rows true), "scores": scores_from_confusion(...),
        "metrics": summary_metrics(...), "images": n, "pixels": labelled pixels}`` and, if
        asked, ``"predictions"``: the class maps in ``samples`` order.
    """
    if not samples:
        raise ValueError("no images to evaluate")
    classes = tuple(extra.get("classes", CLASSES))
    cm = np.zeros((len(classes), len(classes)), np.int64)
    preds = []
    for sample in tqdm(samples, desc="evaluating tiles", mininterval=1.0):
        image, mask = dubai.read_pair(sample)
        pred = predict_tile(model, image, extra, window, overlap, batch_size, device, tta, scales)
        cm += confusion_matrix(mask, pred, len(classes), ignore_index=IGNORE)
        if keep_predictions:
            preds.append(pred)
    scores = scores_from_confusion(cm, classes)
    out = {
        "confusion": cm,
        "scores": scores,
        "metrics": summary_metrics(scores),
        "images": len(samples),
        "pixels": int(cm.sum()),
    }
    if keep_predictions:
        out["predictions"] = preds
    return out


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summary_metrics(scores: Mapping[str, Any]) -> dict[str, Any]:
    """The scalars logged as ``test/...``.

    ``miou_5`` (the 5 real classes; gated), ``miou_6``, ``pixel_accuracy`` and per-class
    ``iou``, ``precision``, ``recall``, ``f1``. Undefined (NaN) values become ``None``, which
    :func:`geolab.common.live.log_metrics` skips.
    """
    per = scores["per_class"]
    real = [per[c]["iou"] for c in REAL_CLASSES if c in per]
    every = [s["iou"] for s in per.values()]
    return {
        "miou_5": _finite(_nanmean(real)),
        "miou_6": _finite(_nanmean(every)),
        "pixel_accuracy": _finite(scores["accuracy"]),
        **{k: {c: _finite(s[k]) for c, s in per.items()} for k in ("iou", "precision", "recall")},
        "f1": {c: _finite(s["f1"]) for c, s in per.items()},
    }


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def confusion_sample(
    cm: np.ndarray, n: int = 200_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform random subsample (without replacement) of the pixels counted in ``cm``.

    Drawn from the matrix itself (multivariate hypergeometric), so no pixel list is kept.

    Returns:
        ``(y_true, y_pred)`` int64 arrays of ``min(n, cm.sum())`` entries, shuffled.
    """
    cm = np.asarray(cm, np.int64)
    k = cm.shape[0]
    rng = np.random.default_rng(seed)
    total = int(cm.sum())
    counts = (
        cm.ravel()
        if total <= n
        else rng.multivariate_hypergeometric(cm.ravel(), n, method="marginals")
    )
    cells = np.repeat(np.arange(k * k), counts)
    rng.shuffle(cells)
    return cells // k, cells % k


def per_class_table(result: Mapping[str, Any]) -> dict[str, Any]:
    """What ``per_class.json`` holds: summary, per-class scores and pixel counts, the matrix."""
    cm = np.asarray(result["confusion"])
    per = result["scores"]["per_class"]
    return {
        **{k: result["metrics"][k] for k in ("miou_5", "miou_6", "pixel_accuracy")},
        "images": result["images"],
        "labelled_pixels": result["pixels"],
        "classes": {
            c: {
                **{k: _finite(v) for k, v in per[c].items()},
                "true_pixels": int(cm[i].sum()),
                "predicted_pixels": int(cm[:, i].sum()),
            }
            for i, c in enumerate(per)
        },
        "confusion_matrix": {"rows": "true", "columns": "predicted", "counts": cm.tolist()},
    }


def _thumb(array: np.ndarray, max_side: int, nearest: bool) -> np.ndarray:
    h, w = array.shape[:2]
    f = max_side / max(h, w)
    if f >= 1:
        return array
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def legend_handles(classes: Sequence[str] = CLASSES) -> list[Patch]:
    """Colour patches of the classes (dataset colours), plus black for ignored pixels."""
    handles = [Patch(color=np.array(dubai.COLOURS[c]) / 255, label=c) for c in classes]
    return [*handles, Patch(color="black", label="ignored")]


def examples_figure(
    samples: Sequence[dubai.Sample],
    preds: Sequence[np.ndarray],
    n: int = 10,
    max_side: int = 300,
    title: str = "image / true mask / predicted mask",
) -> plt.Figure:
    """Rows of image, true mask and predicted mask, colour-coded, with a legend.

    Args:
        samples: the images (their masks are read from disk).
        preds: ``(H, W)`` class maps, one per sample, in the same order.
        n: rows; the first ``n`` samples by tile and image name are shown (the same every run,
            whatever the order given).
        max_side: images are shrunk to this for display.
        title: the figure's title.
    """
    if len(samples) != len(preds):
        raise ValueError(f"{len(samples)} samples but {len(preds)} predictions")
    order = sorted(range(len(samples)), key=lambda i: _key(samples[i]))[:n]
    rows = max(1, len(order))
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows + 0.9), squeeze=False)
    for ax, head in zip(axes[0], ("image", "true", "predicted"), strict=True):
        ax.set_title(head, fontsize=9)
    for row, i in enumerate(order):
        image, mask = dubai.read_pair(samples[i])
        pred = preds[i]
        labelled = mask != IGNORE
        acc = float((pred[labelled] == mask[labelled]).mean()) if labelled.any() else float("nan")
        panels = [
            _thumb(image, max_side, nearest=False),
            _thumb(colour_mask(mask), max_side, nearest=True),
            _thumb(colour_mask(pred), max_side, nearest=True),
        ]
        for ax, panel in zip(axes[row], panels, strict=True):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(
            f"tile {samples[i].tile} {samples[i].image.stem}\nacc {acc:.3f}", fontsize=8
        )
    fig.legend(handles=legend_handles(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.6 / height, 1, 1 - 0.3 / height))
    return fig


def per_class_bars(scores: Mapping[str, Any]) -> plt.Figure:
    """Precision and recall per class (bars), IoU in the tick labels, mIoU in the title."""
    per = scores["per_class"]
    classes = list(per)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 1.5, 4))
    for offset, key, colour in ((-0.2, "precision", "tab:blue"), (0.2, "recall", "tab:orange")):
        values = np.array([per[c][key] for c in classes], np.float64)
        bars = ax.bar(x + offset, np.nan_to_num(values), 0.4, label=key, color=colour)
        for bar, v in zip(bars, values, strict=True):
            text = "n/a" if np.isnan(v) else f"{v:.2f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    iou = [per[c]["iou"] for c in classes]
    ax.set_xticks(x, [f"{c}\nIoU {v:.2f}" for c, v in zip(classes, iou, strict=True)], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score")
    m = {
        k: "n/a" if v is None else f"{v:.3f}"
        for k, v in summary_metrics(scores).items()
        if k.startswith("miou")
    }
    ax.set_title(
        f"per-class precision / recall (mIoU-5 {m['miou_5']}, mIoU-6 {m['miou_6']})", fontsize=10
    )
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def sweep_scales(train_scale: float, factors: Sequence[float]) -> list[float]:
    """Inference scales to sweep: ``train_scale`` times each factor, capped at 1, sorted, unique.

    Raises:
        ValueError: no factor, or a factor that is not positive.
    """
    if not factors or any(f <= 0 for f in factors):
        raise ValueError(f"sweep factors must be positive numbers, got {list(factors)}")
    return sorted({round(min(1.0, train_scale * f), 4) for f in factors})


def scale_key(scales: Sequence[float]) -> str:
    """The row name of a set of inference scales: ``"0.5"``, ``"0.25 + 0.5"``."""
    return " + ".join(f"{x:g}" for x in sorted(scales))


def scale_sweep(
    model: nn.Module,
    extra: Mapping[str, Any],
    samples: Sequence[dubai.Sample],
    scale_sets: Sequence[Sequence[float]],
    **infer: Any,
) -> dict[str, Any]:
    """Score whole tiles predicted at each set of scales (to choose ``seg.infer_scales``).

    Args:
        model: the segmentation model (on the device of ``infer``).
        extra: the checkpoint's ``extra``.
        samples: the images to score (meant: the validation tiles).
        scale_sets: the sets of scales to try (``[[0.25], [0.5], [0.25, 0.5]]``).
        **infer: ``window``, ``overlap``, ``batch_size``, ``device``, ``tta``.

    Returns:
        ``{scale_key(set): {"scales", "miou_5", "miou_6", "pixel_accuracy", "iou": {class:
        IoU}}}`` in the order given (repeated sets once).
    """
    out = {}
    for scales in scale_sets:
        key = scale_key(scales)
        if key in out:
            continue
        m = evaluate_tiles(model, extra, samples, scales=scales, **infer)["metrics"]
        out[key] = {"scales": sorted(scales)} | {
            k: m[k] for k in ("miou_5", "miou_6", "pixel_accuracy", "iou")
        }
    return out


def scale_sweep_figure(sweep: Mapping[str, Any], chosen: Sequence[float], title: str) -> plt.Figure:
    """mIoU-5 and per-class IoU against the (single) inference scale; the chosen scales marked."""
    rows = sorted((r for r in sweep.values() if len(r["scales"]) == 1), key=lambda r: r["scales"])
    x = [r["scales"][0] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    classes = [c for c in REAL_CLASSES if c in rows[0]["iou"]]
    for c in classes:
        ax.plot(x, [r["iou"][c] for r in rows], "o-", lw=1, ms=3, alpha=0.6, label=c)
    ax.plot(x, [r["miou_5"] for r in rows], "ko-", lw=2.5, label="mIoU-5")
    for s in chosen:
        ax.axvline(s, color="grey", ls="--", lw=1)
    ax.set_xlabel("inference scale (of the original tile; dashed: seg.infer_scales)")
    ax.set_ylabel("IoU")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig
