"""The generated tables of docs/geoloc.md, read from the pipeline's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geolab.common.io import read_json
from geolab.reporting.docs import table

FETCH = "artifacts/geoloc/fetch_stats.json"
GRID = "results/geoloc/grid/stats.json"
TRAIN = "results/geoloc/train/metrics.json"
METRICS = "results/geoloc/evaluate/metrics.json"
REPORT = "results/geoloc/evaluate/report.json"
WITHIN = ("within_1km", "within_25km", "within_200km")


def data_block(fetch: dict[str, Any], grid: dict[str, Any]) -> str:
    """Places, photos, split and cells."""
    places = grid["places"]
    rows = [
        ["source", fetch.get("source", "?")],
        ["places (4 photos each)", fetch.get("locations", sum(places.values()))],
        ["photo size", f"{fetch.get('size', '?')} px"],
        ["train / val / test places", f"{places['train']} / {places['val']} / {places['test']}"],
        ["grid cells kept", grid["cells"]],
        ["skipped (outside bbox, missing or corrupt photos)", sum(grid["skipped"].values())],
    ]
    if "views_with_sea" in fetch:
        rows.append(["views that show the sea", fetch["views_with_sea"]])
    return table(["", "value"], rows)


def _row(name: str, m: dict[str, float]) -> list[object]:
    return [name, f"{m['mean_km']:.1f}", f"{m['median_km']:.1f}",
            *(f"{m[k]:.1f} %" for k in WITHIN)]  # fmt: skip


HEADER = ["test places", "mean km", "median km", "≤ 1 km", "≤ 25 km", "≤ 200 km"]


def results_block(metrics: dict[str, Any], train: dict[str, Any], chosen: str) -> str:
    """The model against the two baselines on the test places."""
    test = metrics["test"]
    rows = [_row(f"**model** (`{chosen}`)", test)]
    for name, m in metrics["baselines"].items():
        rows.append(_row(f"baseline `{name}`", m["test"]))
    out = table(HEADER, rows)
    ref = metrics["baselines"]["train_mean"]["test"]["mean_km"]
    return out + (
        f"\nMean error / predict-the-training-mean baseline: "
        f"**{test['ratio_to_train_mean']:.3f}** ({test['mean_km']:.1f} / {ref:.1f} km; the "
        f"target is ≤ 0.2). Cell accuracy "
        f"{100 * test['cell_accuracy']:.1f} %. Best epoch {train.get('best_epoch', '?')} of "
        f"{train.get('epochs_run', '?')}.\n"
    )


def predictors_block(metrics: dict[str, Any]) -> str:
    """Every way of turning the network's outputs into a position, on val and test."""
    rows = []
    for name, m in metrics["predictors"].items():
        rows.append([f"`{name}`", f"{m['val']['mean_km']:.1f}", *_row("", m["test"])[1:]])
    header = ["predictor", "val mean km", *HEADER[1:]]
    header[2] = "test mean km"
    return table(header, rows)


def blocks(root: Path) -> dict[str, str]:
    """Every generated block of the geoloc doc."""
    metrics = read_json(root / METRICS)
    return {
        "geoloc-data": data_block(read_json(root / FETCH), read_json(root / GRID)),
        "geoloc-results": results_block(
            metrics, read_json(root / TRAIN), read_json(root / REPORT)["predictor"]
        ),
        "geoloc-predictors": predictors_block(metrics),
    }
