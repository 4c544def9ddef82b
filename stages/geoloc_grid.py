"""Stage geoloc_grid: the split, EPSG:3765 coordinates and the grid classes over Croatia.

Writes the grid as a GeoPackage (cells with their centroid, land-clipped and weighted
centroids), ``labels.json`` (split, projected and normalised coordinates and cell per place,
the train-only min-max normaliser) and a figure of the grid with the three kinds of centroid.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from geolab.common.io import write_json
from geolab.common.stage import parser, start
from geolab.geoloc.dataset import read_dataset
from geolab.geoloc.grid import grid_figure, save_grid
from geolab.geoloc.pipeline import build_grid, split


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", required=True, help="the geoloc_fetch dataset folder")
    p.add_argument("--boundary", required=True, help="Croatia's GeoJSON")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args()
    ctx = start("geoloc", args.params)
    c = ctx.params
    records, report = read_dataset(args.dataset)
    splits = split(records, c.val_frac, c.test_frac, ctx.base.seed)
    out = build_grid(records, splits, args.boundary, c.grid.cells)
    folder = Path(args.out)
    save_grid(out["grid"], folder / "grid.gpkg")
    save_grid(out["grid"], folder / "grid.geojson")
    write_json(folder / "labels.json", {"normaliser": out["normaliser"].to_dict(),
                                        "places": out["labels"]})  # fmt: skip
    stats = {
        "places": {k: len(v) for k, v in splits.items()},
        "skipped": report["skipped"],
        "cells": int(len(out["grid"])),
    }
    write_json(folder / "stats.json", stats)
    fig = grid_figure(out["grid"], out["boundary"], out["train_xy"])
    fig.savefig(folder / "grid.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
