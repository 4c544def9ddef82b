"""``geolab geoloc predict DIR --out submission.csv``: locate places from their four photos.

``DIR`` is a dataset folder in the competition layout (``data.csv`` with a ``uuid`` column;
``images/<uuid>/0.jpg, 90.jpg, 180.jpg, 270.jpg``); coordinates, if present, are ignored.
Writes ``uuid,latitude,longitude`` for every row of ``data.csv``, in file order. A place whose
photos are missing or unreadable cannot be located: it gets the mean training position and is
listed on stderr (exit status 0, so a submission is still complete; ``--strict`` makes it 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolab geoloc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="predict the position of every place of a folder")
    pr.add_argument("folder", type=Path, help="dataset folder: data.csv + images/<uuid>/")
    pr.add_argument("--out", type=Path, required=True, help="CSV to write (uuid,lat,lon)")
    pr.add_argument("--model", type=Path, default=Path("models/geoloc/model.pt"), help="checkpoint")
    pr.add_argument(
        "--predictor",
        help="override the checkpoint's predictor: cells_centroid, cells_clipped, "
        "cells_weighted, regression or blend (default: the one chosen on validation)",
    )
    pr.add_argument("--batch-size", type=int, default=64, help="places per forward pass")
    pr.add_argument("--strict", action="store_true", help="exit 1 if any place was skipped")
    pr.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``geolab geoloc``."""
    args = _parser().parse_args(argv)
    if not (args.folder / "data.csv").is_file():
        raise SystemExit(f"{args.folder / 'data.csv'}: not found (expected a dataset folder)")
    if not args.model.exists():
        raise SystemExit(f"{args.model}: no trained model (run `dvc repro geoloc_train`)")
    import numpy as np
    import torch

    from geolab.geoloc.dataset import read_dataset, read_uuids
    from geolab.geoloc.predict import Geolocator, write_submission

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        geo = Geolocator.load(args.model, device, args.predictor)
        records, report = read_dataset(args.folder, require_coords=False)
        latlon = geo.predict(records, args.batch_size)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"geolab geoloc predict: {err}") from None
    found = {r.uuid: latlon[i] for i, r in enumerate(records)}
    skipped = [
        item["uuid"] for reason in ("outside_bbox", "missing_images", "corrupt_images")
        for item in report[reason]
    ]  # fmt: skip
    order = read_uuids(args.folder)
    fill = np.asarray(geo.extra.get("train_mean", [np.nan, np.nan]), dtype=float)
    rows = np.array([found.get(u, fill) for u in order])
    write_submission(args.out, order, rows)
    print(f"{len(records)} places located with {geo.predictor} -> {args.out}", file=sys.stderr)
    if skipped:
        print(
            f"{len(skipped)} places skipped (no usable photos; given the mean training "
            f"position): {', '.join(skipped[:10])}{' ...' if len(skipped) > 10 else ''}",
            file=sys.stderr,
        )
        return 1 if args.strict else 0
    return 0
