"""seg speed: training images/s against a bare loop, inference ms per 512x512 tile, model sizes.

Usage: python benchmarks/seg_speed.py [--models unet unet_pretrained] [--out ...json]

Training: for each model, ``geolab.common.train.fit`` (one epoch: scheduler, evaluation-free,
progress bar, resume state and checkpoint writes) and a bare forward + loss + backward + clip +
AdamW loop train the same model from the same initial weights on the same batches of
128x128 patches, one after the other, alternating ``--reps`` times; the medians are compared, so
the ratio measures what geolab's loop costs. Both use the study's loss (cross-entropy + Dice).
Inference: :func:`geolab.seg.infer.predict_tile` on a 512x512 RGB tile at scale 1 (one window),
and on the same tile at the default sliding-window settings with ``scale: 0.25`` as in the
pipeline, median of ``--reps`` after a warm-up. Sizes: parameter count and the size on disk of a
checkpoint written by the same function the pipeline uses.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geolab.common.io import write_json
from geolab.common.train import CheckpointSpec, TrainConfig, fit, save_checkpoint
from geolab.seg.data import CLASSES
from geolab.seg.infer import predict_tile
from geolab.seg.models import MODELS
from geolab.seg.train import divisor, make_loss, normalisation

DEFAULT_KWARGS: dict[str, dict[str, Any]] = {
    "unet": {"width": 16, "depth": 4},
    "unet_pretrained": {
        "encoder": "efficientnet_lite0",
        "weights": "none",
        "decoder_channels": [128, 64, 32, 16, 16],
    },
}


def _batches(n: int, batch_size: int, side: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(batch_size, 3, side, side, generator=gen)
        y = torch.randint(0, len(CLASSES) - 1, (batch_size, side, side), generator=gen)
        out.append((x, y))
    return out


def bare(model: nn.Module, batches: list, loss_fn: Any, channels_last: bool) -> float:
    """Images/s of a plain forward + loss + backward + clip + AdamW loop."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return sum(len(x) for x, _ in batches) / (time.perf_counter() - start)


def geolab_loop(
    model: nn.Module, batches: list, loss_fn: Any, name: str, channels_last: bool
) -> float:
    """Images/s of ``fit`` for one epoch over the same batches."""
    cfg = TrainConfig(
        epochs=1,
        lr=1e-3,
        monitor="train/loss",
        grad_clip=1.0,
        amp=True,
        channels_last=channels_last,
    )

    def step(m: nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
        return {"loss": loss_fn(m(batch[0]), batch[1])}

    with tempfile.TemporaryDirectory() as tmp:
        spec = CheckpointSpec(Path(tmp) / "m.pt", name, {})
        start = time.perf_counter()
        fit(model, batches, cfg, step, spec)
        return sum(len(x) for x, _ in batches) / (time.perf_counter() - start)


def inference_ms(model: nn.Module, extra: dict[str, Any], reps: int) -> float:
    """Median ms of ``predict_tile`` on a random 512x512 RGB tile (after one warm-up call)."""
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    predict_tile(model, image, extra)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        predict_tile(model, image, extra)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def checkpoint_bytes(model: nn.Module, name: str, kwargs: dict[str, Any]) -> int:
    """Size of a checkpoint written by the pipeline's ``save_checkpoint``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.pt"
        save_checkpoint(CheckpointSpec(path, name, kwargs), model, 1, {})
        return path.stat().st_size


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """All figures for one registry model."""
    kwargs = {"num_classes": len(CLASSES), **DEFAULT_KWARGS.get(name, {})}
    torch.manual_seed(0)
    initial = MODELS.build(name, **kwargs)
    loss_fn = make_loss(["ce", "dice"], None, 2.0)
    batches = _batches(args.batches, args.batch_size, args.patch)
    runs: dict[str, list[float]] = {"bare": [], "geolab": []}
    for _ in range(args.reps):
        cl = args.channels_last
        runs["bare"].append(bare(copy.deepcopy(initial), batches, loss_fn, cl))
        runs["geolab"].append(geolab_loop(copy.deepcopy(initial), batches, loss_fn, name, cl))
    out: dict[str, Any] = {f"train_{k}_images_per_s": statistics.median(v) for k, v in runs.items()}
    out["train_ratio"] = out["train_geolab_images_per_s"] / out["train_bare_images_per_s"]
    mean, std = normalisation(name)
    extra = {"mean": mean, "std": std, "divisor": divisor(name, kwargs)}
    out["infer_ms_per_512_tile_scale1"] = inference_ms(initial, {**extra, "scale": 1.0}, args.reps)
    out["infer_ms_per_512_tile_scale025"] = inference_ms(
        initial, {**extra, "scale": 0.25}, args.reps
    )
    out["parameters"] = sum(p.numel() for p in initial.parameters())
    out["checkpoint_bytes"] = checkpoint_bytes(initial, name, kwargs)
    out["model_kwargs"] = kwargs
    out["runs"] = runs
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["unet", "unet_pretrained"])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/seg_speed.json"))
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="train in contiguous NCHW (the pipeline uses channels-last: seg.channels_last)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"models": {m: bench_model(m, args) for m in args.models}}
    results.update(
        threads=args.threads,
        channels_last=args.channels_last,
        batch_size=args.batch_size,
        patch=args.patch,
        batches=args.batches,
        torch=torch.__version__,
    )
    write_json(args.out, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
