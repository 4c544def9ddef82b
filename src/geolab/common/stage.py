"""Start-up shared by the stage scripts in ``stages/``: logging, params, seed, device."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from geolab.common.params import BaseParams, ParamsError, load_params, to_dict
from geolab.common.runtime import setup


@dataclasses.dataclass
class StageContext:
    """What a stage gets from :func:`start`.

    Attributes:
        base: the ``base`` section.
        params: the stage's study section (its schema instance).
        device: the resolved torch device.
        resolved: ``{"base": ..., section: ...}`` as plain data, stored in checkpoints.
    """

    base: BaseParams
    params: Any
    device: torch.device
    resolved: dict[str, Any]


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--params", type=Path, default=Path(os.environ.get("GEOLAB_PARAMS", "params.yaml"))
    )
    return p


def init_logging() -> None:
    """Log to stderr (level from ``GEOLAB_LOG``, default INFO)."""
    logging.basicConfig(
        level=os.environ.get("GEOLAB_LOG", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def start(section: str, params_path: str | Path) -> StageContext:
    """Set up a stage: logging, validated params (the whole file), seed, threads, device.

    A malformed params file ends the stage with exit status 2 and one line naming the file and
    key (no traceback), which is what ``dvc repro`` then shows.
    """
    init_logging()
    try:
        params = load_params(params_path)
    except ParamsError as err:
        logging.getLogger(__name__).error("%s", err)
        raise SystemExit(2) from None
    if section not in params:
        logging.getLogger(__name__).error("%s: section '%s' is missing", params_path, section)
        raise SystemExit(2)
    base = params["base"]
    device = setup(base)
    resolved = {"base": to_dict(base), section: to_dict(params[section])}
    return StageContext(base, params[section], device, resolved)


def train_with_live(live_dir: str | Path, run: Callable[[Any], Any]) -> Any:
    """Run ``run(live)`` with the stage's dvclive logger; record its best epoch in the summary.

    Args:
        live_dir: ``results/<study>/train``.
        run: calls the study's ``train(..., live=live)`` and returns its ``FitResult``.
    """
    from geolab.common.live import open_live

    with open_live(live_dir) as live:
        result = run(live)
        live.summary["best_epoch"] = result.best_epoch
        live.summary["epochs_run"] = result.epochs_run
    return result
