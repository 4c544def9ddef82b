"""dvclive helpers: one ``Live`` per stage, writing to ``results/<study>/<stage>``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dvclive import Live

log = logging.getLogger(__name__)


def open_live(out_dir: str | Path, resume: bool = False) -> Live:
    """Open the stage's dvclive logger.

    Plots and metrics are declared by hand in the project's ``dvc.yaml``, so dvclive must not
    write its own ``dvc.yaml``, start DVC experiments or render HTML reports.

    Args:
        out_dir: ``results/<study>/<stage>``.
        resume: continue the step count of an interrupted run (used with checkpoint resume).

    Returns:
        A ``dvclive.Live`` to use as a context manager.
    """
    return Live(
        dir=str(out_dir),
        resume=resume,
        report=None,
        save_dvc_exp=False,
        dvcyaml=False,
        cache_images=False,
    )


def log_metrics(live: Live, metrics: dict[str, Any], prefix: str = "", plot: bool = True) -> None:
    """Log a flat or nested dict of scalars as ``prefix/key`` metrics.

    Args:
        live: the stage's logger.
        metrics: ``{"loss": 0.3, "f1": {"macro": 0.8}}`` -> ``prefix/loss``, ``prefix/f1/macro``.
        prefix: e.g. ``"train"``, ``"val"``, ``"test"``.
        plot: also append to the per-step plot TSV (False for one-off summary metrics).
    """
    for key, value in _flatten(metrics, prefix).items():
        if value is None:
            continue
        live.log_metric(key, float(value), plot=plot)


def _flatten(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out
