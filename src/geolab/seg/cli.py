"""``geolab seg predict``: segment an aerial image of any size into the Dubai classes.

Writes the class map painted with the dataset's colours (building, land, road, vegetation,
water, unlabeled) and, with ``--overlay``, the image blended 50/50 with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from geolab.cli import positive_int
from geolab.common.io import OutputPathError, atomic_open, check_output_path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolab seg", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="segment an image; write a colour mask")
    pr.add_argument("image", type=Path, help="the image (JPEG, PNG, ...; any size)")
    pr.add_argument("--out", type=Path, required=True, help="colour mask to write (PNG)")
    pr.add_argument("--overlay", type=Path, help="also write the image blended with the mask")
    pr.add_argument("--model", type=Path, default=Path("models/seg/model.pt"), help="checkpoint")
    pr.add_argument(
        "--window",
        type=positive_int,
        default=512,
        help="window side in model pixels (rounded down to a multiple of the model's divisor)",
    )
    pr.add_argument(
        "--overlap", type=int, help="overlap of windows (default: 128, at most a quarter window)"
    )
    pr.add_argument("--batch-size", type=positive_int, default=4, help="windows per forward pass")
    pr.add_argument("--tta", action="store_true", help="average over flips (4x slower)")
    pr.add_argument(
        "--scales",
        type=float,
        nargs="+",
        help="inference scales, probabilities averaged (default: the checkpoint's infer_scales)",
    )
    pr.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    return p


def _save(path: Path, array: np.ndarray) -> None:
    """Write an RGB array atomically, in the format its extension names (PNG if unknown)."""
    from PIL import Image

    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_open(path, "wb") as fh:
        Image.fromarray(array).save(fh, format=fmt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``geolab seg``."""
    args = _parser().parse_args(argv)
    if not args.image.is_file():
        raise SystemExit(f"{args.image}: file not found")
    if not args.model.exists():
        raise SystemExit(f"{args.model}: no trained model (run `dvc repro seg_train`)")
    try:  # every output path is checked before any work, so a failing run writes nothing
        for out in (args.out, args.overlay):
            if out is not None:
                check_output_path(out)
    except OutputPathError as err:
        raise SystemExit(f"geolab seg predict: {err}") from None
    import torch

    from geolab.common.train import load_checkpoint
    from geolab.datasets import dubai
    from geolab.seg.infer import blend, colour_mask, predict_tile
    from geolab.seg.models import MODELS

    try:
        image = dubai.read_image(args.image)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.overlap is None:
        args.overlap = min(128, args.window // 4)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model, blob = load_checkpoint(args.model, MODELS.build, device)
        pred = predict_tile(
            model,
            image,
            blob["extra"],
            args.window,
            args.overlap,
            args.batch_size,
            device,
            args.tta,
            args.scales,
        )
    except ValueError as err:
        raise SystemExit(f"geolab seg predict: {err}") from None
    classes = blob["extra"].get("classes", dubai.CLASSES)
    mask = colour_mask(pred, classes)
    overlay = blend(image, pred, classes=classes) if args.overlay else None
    _save(args.out, mask)
    if overlay is not None:
        _save(args.overlay, overlay)
    counts = np.bincount(pred.ravel(), minlength=len(classes))
    shares = ", ".join(f"{c} {n / pred.size:.1%}" for c, n in zip(classes, counts, strict=False))
    print(f"{args.image}: {image.shape[1]}x{image.shape[0]} -> {args.out} ({shares})")
    return 0
