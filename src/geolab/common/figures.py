"""Figures shared by the studies, drawn from what the stages logged."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_series(live_dir: str | Path, metric: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric logged by dvclive (``plots/metrics/<metric>.tsv``).

    Args:
        live_dir: the dvclive directory, e.g. ``results/seg/train``.
        metric: the logged name, e.g. ``val/loss``.

    Raises:
        FileNotFoundError: the metric was not logged there (names the file).
        ValueError: a malformed row (names the file and line).
    """
    path = Path(live_dir) / "plots" / "metrics" / f"{metric}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no history for '{metric}' (was the stage run?)")
    name = metric.rsplit("/", 1)[-1]
    steps, values = [], []
    with path.open(encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            try:
                steps.append(int(row["step"]))
                values.append(float(row[name]))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}:{line}: expected columns step and {name}") from err
    return steps, values


def training_curves(
    live_dir: str | Path,
    panels: Sequence[Sequence[str]],
    title: str = "",
    minimize: Sequence[str] = (),
) -> plt.Figure:
    """One panel per group of metrics against epoch, e.g. ``[["train/loss", "val/loss"]]``.

    The best value of a ``val/`` metric that is not a loss is marked: the highest, or the
    lowest for a metric whose name contains one of ``minimize`` (e.g. ``("km",)``).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, metrics in zip(axes[0], panels, strict=True):
        for metric in metrics:
            steps, values = read_series(live_dir, metric)
            epochs = [s + 1 for s in steps]
            ax.plot(epochs, values, marker="o", ms=3, label=metric)
            if metric.startswith("val/") and not metric.endswith("loss") and values:
                pick = min if any(m in metric for m in minimize) else max
                best = pick(range(len(values)), key=values.__getitem__)
                ax.annotate(
                    f"best {values[best]:.3f}",
                    (epochs[best], values[best]),
                    textcoords="offset points",
                    xytext=(0, -14),
                    ha="center",
                    fontsize=8,
                )
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
