"""Start-up shared by the stage scripts in ``stages/``: logging, params, seed, device."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
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


def train_stage(
    description: str,
    section: str,
    inputs: Sequence[tuple[str, str]],
    train: Callable[..., Any],
    load: Callable[..., Any] | None = None,
) -> Any:
    """The whole of a ``<study>_train`` stage script.

    Parses ``--<input> ...`` for every ``(name, help)`` of ``inputs``, plus ``--model`` and
    ``--live``; starts the stage; then calls ``train(params, *inputs, model, device, live=...,
    seed=base.seed, resolved=...)`` inside the stage's dvclive logger.

    Args:
        description: the script's docstring (its ``--help``).
        section: the study's params section.
        inputs: the input options, in the order ``train`` takes them.
        train: the study's ``train`` function.
        load: turns each input path into what ``train`` takes (default: the path itself).

    Returns:
        What ``train`` returned (its ``FitResult``).
    """
    p = parser(description)
    for name, help_ in inputs:
        p.add_argument(f"--{name}", required=True, help=help_)
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start(section, args.params)
    paths = [getattr(args, name.replace("-", "_")) for name, _ in inputs]
    values = [load(path) for path in paths] if load is not None else paths
    return train_with_live(
        args.live,
        lambda live: train(
            ctx.params,
            *values,
            args.model,
            ctx.device,
            live=live,
            seed=ctx.base.seed,
            resolved=ctx.resolved,
        ),
    )


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
