"""Throughput of geolab's training loop against a bare forward+backward loop, same run.

Usage: python benchmarks/train_loop_overhead.py [--out benchmarks/results/train_loop.json]

Both loops train the cls SimpleCNN on the same random batches with AdamW and the same gradient
clipping for the same number of steps, so the difference is the loop's own machinery (scheduler,
metric bookkeeping, progress bar, per-epoch checkpoints). The two are run alternately ``--reps``
times and the medians compared; the ratio (geolab / bare) is what matters, since absolute speed
depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from geolab.cls.models import MODELS
from geolab.common.io import write_json
from geolab.common.train import CheckpointSpec, TrainConfig, fit


def _data(n: int, size: int, batch: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def bare(loader: DataLoader, epochs: int, grad_clip: float) -> float:
    """Images/s of a plain loop: forward, loss, backward, clipping, AdamW step."""
    torch.manual_seed(0)
    model = MODELS.build("simple_cnn", num_classes=5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
    return epochs * len(loader.dataset) / (time.perf_counter() - start)


def geolab_fit(loader: DataLoader, epochs: int, grad_clip: float) -> float:
    """Images/s of ``geolab.common.train.fit`` (clipping, scheduler, checkpoints, logging on)."""
    torch.manual_seed(0)
    model = MODELS.build("simple_cnn", num_classes=5)
    loss_fn = nn.CrossEntropyLoss()
    cfg = TrainConfig(
        epochs=epochs, lr=1e-3, monitor="train/loss", resume=False, grad_clip=grad_clip
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec = CheckpointSpec(Path(tmp) / "m.pt", "simple_cnn", {"num_classes": 5})
        start = time.perf_counter()
        fit(model, loader, cfg, lambda m, b: {"loss": loss_fn(m(b[0]), b[1])}, spec)
        return epochs * len(loader.dataset) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/train_loop.json"))
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loader = _data(args.n, 32, 64)
    bare(loader, 1, args.grad_clip)  # warm-up
    runs: dict[str, list[float]] = {"bare": [], "geolab": []}
    for _ in range(args.reps):
        runs["bare"].append(bare(loader, args.epochs, args.grad_clip))
        runs["geolab"].append(geolab_fit(loader, args.epochs, args.grad_clip))
    results = {f"{k}_images_per_s": statistics.median(v) for k, v in runs.items()}
    results["ratio"] = results["geolab_images_per_s"] / results["bare_images_per_s"]
    results.update(
        runs=runs,
        n=args.n,
        epochs=args.epochs,
        threads=args.threads,
        grad_clip=args.grad_clip,
        torch=torch.__version__,
        machine=platform.machine(),
    )
    write_json(args.out, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
