"""``geolab geoloc predict DIR --out submission.csv``: locate places from their four photos.

``DIR`` is a dataset folder in the competition layout (``data.csv`` with a ``uuid`` column;
``images/<uuid>/0.jpg, 90.jpg, 180.jpg, 270.jpg``); coordinates, if present, are not read.
Writes ``uuid,latitude,longitude`` for every row of ``data.csv``, in file order. A place whose
photos are missing, unreadable or not 8 bits per channel cannot be located: it gets the mean
training position and is listed on stderr with the photo and the reason (exit status 0, so a
submission is still complete). With ``--strict`` such a place makes the command write nothing
and exit 1. A wrong input (no ``data.csv`` or ``images/`` folder, a malformed ``data.csv``,
``--out`` a directory, a file that is not a geoloc checkpoint) is one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from geolab.cli import positive_int

PROG = "geolab geoloc predict"
#: The longest error message printed from a checkpoint that does not load (torch's are long).
_MODEL_ERROR_CHARS = 200


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
    pr.add_argument("--batch-size", type=positive_int, default=64, help="places per forward pass")
    pr.add_argument(
        "--strict", action="store_true", help="write nothing and exit 1 if any place is skipped"
    )
    pr.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``geolab geoloc``: an error is one line on stderr and exit status 1."""
    args = _parser().parse_args(argv)
    try:
        return _predict(args)
    except (OSError, ValueError, RuntimeError) as err:
        raise SystemExit(f"{PROG}: {_one_line(err)}") from None


def _predict(args: argparse.Namespace) -> int:
    """Check the inputs, locate the places and write the submission; the exit status."""
    out = _check_inputs(args)
    import numpy as np

    from geolab.geoloc.dataset import read_dataset, read_uuids
    from geolab.geoloc.predict import write_submission

    geo = _load_model(args.model, _device(args.device), args.predictor)
    records, report = read_dataset(args.folder, require_coords=False)
    skipped = _skipped(report)
    if skipped and args.strict:
        _print_skipped(skipped, "no usable photos")
        message = f"{PROG}: --strict: {len(skipped)} places skipped, nothing written to {out}"
        print(message, file=sys.stderr)
        return 1
    latlon = geo.predict(records, args.batch_size)
    found = {r.uuid: latlon[i] for i, r in enumerate(records)}
    order = read_uuids(args.folder)
    fill = np.asarray(geo.extra.get("train_mean", [np.nan, np.nan]), dtype=float)
    write_submission(out, order, np.array([found.get(u, fill) for u in order]))
    print(f"{len(records)} places located with {geo.predictor} -> {out}", file=sys.stderr)
    if skipped:
        _print_skipped(skipped, "no usable photos; given the mean training position")
    return 0


def _check_inputs(args: argparse.Namespace) -> Path:
    """Fail before any work on a wrong ``--out``, dataset folder or ``--model``; ``--out``.

    Raises:
        OutputPathError: ``--out`` is a directory or lies under a file.
        FileNotFoundError: no ``data.csv``, no ``images/`` folder or no checkpoint (names it).
    """
    from geolab.common.io import check_output_path
    from geolab.geoloc.dataset import DATA_CSV, IMAGES

    out = check_output_path(args.out)
    layout = f"a dataset folder holds {DATA_CSV} and {IMAGES}/<uuid>/{{0,90,180,270}}.jpg"
    if not (args.folder / DATA_CSV).is_file():
        raise FileNotFoundError(f"{args.folder / DATA_CSV}: not found ({layout})")
    if not (args.folder / IMAGES).is_dir():
        raise FileNotFoundError(f"{args.folder / IMAGES}: folder not found ({layout})")
    if not args.model.is_file():
        raise FileNotFoundError(f"{args.model}: no trained model (run `dvc repro geoloc_train`)")
    return out


def _device(name: str) -> str:
    """``auto`` resolved to ``cuda`` or ``cpu``; another name checked against this machine."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise ValueError(f"--device {name!r}: not a device (auto, cpu or cuda)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here (use cpu or auto)")
    return name


def _load_model(path: Path, device: str, predictor: str | None) -> Any:
    """The :class:`~geolab.geoloc.predict.Geolocator`; any loading error as one short line."""
    from geolab.geoloc.predict import Geolocator

    try:
        return Geolocator.load(path, device, predictor)
    except (ValueError, RuntimeError) as err:  # RuntimeError: weights of another shape
        text = _one_line(err, _MODEL_ERROR_CHARS)
        raise ValueError(text if str(path) in text else f"{path}: {text}") from None


def _skipped(report: dict[str, Any]) -> list[str]:
    """One line per skipped place of a :func:`read_dataset` report, in file order."""
    items = []
    for item in report["missing_images"]:
        items.append((item["line"], item["uuid"], f"{item['file']}: missing"))
    for item in report["corrupt_images"]:
        items.append((item["line"], item["uuid"], f"{item['file']}: {item['error']}"))
    for item in report["outside_bbox"]:  # only when coordinates are read
        where = f"({item['latitude']}, {item['longitude']})"
        items.append((item["line"], item["uuid"], f"coordinates {where} outside Croatia"))
    return [f"{uuid} (data.csv line {line}): {_one_line(why)}" for line, uuid, why in sorted(items)]


def _print_skipped(lines: list[str], why: str) -> None:
    """``N places skipped (why):`` then each place with its photo and reason, on stderr."""
    print(f"{len(lines)} places skipped ({why}):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def _one_line(err: BaseException | str, limit: int | None = None) -> str:
    """An error message on one line, cut after its first sentence past ``limit`` characters.

    A first sentence longer than ``limit`` is cut at a word instead; a cut message ends in ``...``.
    """
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is not None and len(text) > limit:
        end = text.find(". ", 0, limit)
        text = (text[: end + 1] if end > 0 else text[:limit].rsplit(" ", 1)[0]) + " ..."
    return text
