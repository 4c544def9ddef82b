"""Evaluation of study ``geoloc`` (stage ``geoloc_evaluate``): km errors, baselines, figures.

Errors are great-circle (haversine) distances in km. Every predictor of
:data:`geolab.geoloc.train.PREDICTORS` is scored on validation and test; ``predict: auto``
picks the one with the lowest *validation* mean km, and the headline test metrics are that
predictor's. Two baselines are computed in the same run from the training places only:
``train_mean`` (always predict the mean training position, averaged in EPSG:3765) and
``common_cell`` (always predict the ``grid.centroid`` point of the cell with most training
places).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geolab.common.io import atomic_open, read_json, write_json
from geolab.geoloc.geo import haversine_km, mean_position

log = logging.getLogger(__name__)

#: The "within" thresholds of the competition's leaderboard, km.
WITHIN_KM: tuple[float, ...] = (1.0, 25.0, 200.0)


def distance_metrics(km: np.ndarray) -> dict[str, float]:
    """``mean_km``, ``median_km`` and ``within_<t>km`` (% of places) for :data:`WITHIN_KM`."""
    km = np.asarray(km, dtype=float)
    if km.size == 0 or not np.isfinite(km).all():
        raise ValueError("distances must be a non-empty array of finite values")
    out = {"mean_km": float(km.mean()), "median_km": float(np.median(km))}
    for t in WITHIN_KM:
        out[f"within_{t:g}km"] = float(100 * (km <= t).mean())
    return out


def errors_km(true_latlon: np.ndarray, pred_latlon: np.ndarray) -> np.ndarray:
    """Haversine distance per place between ``(N, 2)`` true and predicted latitude/longitude."""
    t, p = np.asarray(true_latlon, float), np.broadcast_to(pred_latlon, np.shape(true_latlon))
    return haversine_km(t[:, 0], t[:, 1], p[:, 0], p[:, 1])


def baselines(
    train_latlon: np.ndarray, train_cell: np.ndarray, cell_points_latlon: np.ndarray
) -> dict[str, np.ndarray]:
    """The two constant predictions, as ``(2,)`` latitude/longitude.

    Args:
        train_latlon: ``(N, 2)`` training positions.
        train_cell: ``(N,)`` their cells.
        cell_points_latlon: ``(K, 2)`` the cells' representative points (``grid.centroid``).

    Returns:
        ``train_mean`` (the mean training position, averaged in EPSG:3765) and
        ``common_cell`` (the point of the cell with most training places; ties: lowest id).
    """
    lat, lon = mean_position(train_latlon[:, 0], train_latlon[:, 1])
    common = int(np.bincount(train_cell, minlength=len(cell_points_latlon)).argmax())
    return {
        "train_mean": np.array([lat, lon]),
        "common_cell": np.asarray(cell_points_latlon[common], dtype=float),
    }


def map_figure(
    boundary_latlon: Any,
    true_latlon: np.ndarray,
    pred_latlon: np.ndarray,
    title: str,
    max_lines: int = 300,
) -> Figure:
    """Croatia with true (black) and predicted (red) positions joined by error lines.

    Args:
        boundary_latlon: a shapely (Multi)Polygon in longitude/latitude.
        true_latlon: ``(N, 2)``.
        pred_latlon: ``(N, 2)``.
        title: the figure title.
        max_lines: draw at most this many places (the first ones, in a fixed order).
    """
    import shapely
    from matplotlib.collections import LineCollection

    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.add_subplot()
    for poly in getattr(boundary_latlon, "geoms", [boundary_latlon]):
        xs, ys = shapely.get_coordinates(poly.exterior).T
        ax.fill(xs, ys, color="#eef2e6", edgecolor="#7a8a6a", linewidth=0.6, zorder=0)
    t, p = true_latlon[:max_lines], pred_latlon[:max_lines]
    segs = np.stack([t[:, ::-1], p[:, ::-1]], 1)
    km = errors_km(t, p)
    lines = LineCollection(segs, array=km, cmap="viridis", linewidths=0.8, alpha=0.8, zorder=1)
    ax.add_collection(lines)
    ax.scatter(t[:, 1], t[:, 0], s=6, c="black", label="true", zorder=2)
    ax.scatter(p[:, 1], p[:, 0], s=6, c="tab:red", label="predicted", zorder=3)
    fig.colorbar(lines, ax=ax, label="error, km", shrink=0.7)
    ax.set_aspect(1 / np.cos(np.radians(44.5)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def histogram_figure(errors: dict[str, np.ndarray], bins: int = 30) -> Figure:
    """Histograms of the km errors of the model and the baselines (shared bins)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    top = max(1.0, max(float(np.max(v)) for v in errors.values()))
    edges = np.linspace(0, top, bins + 1)
    for name, km in errors.items():
        ax.hist(km, bins=edges, histtype="step", linewidth=1.6,
                label=f"{name} (mean {np.mean(km):.1f} km)")  # fmt: skip
    for t in WITHIN_KM[1:]:
        ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("error, km (haversine)")
    ax.set_ylabel("test places")
    ax.legend()
    fig.tight_layout()
    return fig


def run_evaluation(
    dataset: str | Path,
    grid_dir: str | Path,
    model_path: str | Path,
    boundary_path: str | Path,
    out_dir: str | Path,
    device: Any = "cpu",
    batch_size: int = 64,
) -> dict[str, Any]:
    """Score the checkpoint on validation and test; write metrics, predictions and figures.

    Writes into ``out_dir``: ``metrics.json`` (``test``: the chosen predictor's metrics, its
    cell accuracy and ratio to the train-mean baseline; ``val``: the same on validation;
    ``baselines``; ``predictors``: every predictor on both splits), ``report.json`` (the
    chosen predictor's name), ``predictions.csv`` (test
    places: true and predicted position, error), ``map.png`` and ``errors.png``.

    Returns:
        The metrics dict, plus ``predictor`` (the name of the chosen one).
    """
    import matplotlib.pyplot as plt

    from geolab.geoloc.dataset import read_dataset
    from geolab.geoloc.geo import read_polygons
    from geolab.geoloc.predict import Geolocator
    from geolab.geoloc.train import PREDICTORS, load_places

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    geo = Geolocator.load(model_path, device)
    labels = read_json(Path(grid_dir) / "labels.json")
    records, _ = read_dataset(dataset, check_images=False)
    splits = {
        s: load_places(dataset, labels, s, geo.image_size, records=records) for s in ("val", "test")
    }
    by_id = {r.uuid: r for r in records}
    train_ids = sorted(u for u, p in labels["places"].items() if p["split"] == "train")
    train_ll = np.array([[by_id[u].lat, by_id[u].lon] for u in train_ids])
    train_cell = np.array([labels["places"][u]["cell"] for u in train_ids])
    points_ll = np.stack(geo.decoder.latlon_points(geo.decoder.kind), 1)
    base = baselines(train_ll, train_cell, points_ll)

    metrics: dict[str, Any] = {"predictors": {}, "baselines": {}}
    preds: dict[str, dict[str, np.ndarray]] = {}
    for name, places in splits.items():
        logits, uv = geo.outputs(places.views, batch_size)
        true = np.stack([places.lat, places.lon], 1)
        preds[name] = {}
        for p in PREDICTORS:
            preds[name][p] = geo.decoder.latlon(logits, uv, p)
            m = distance_metrics(errors_km(true, preds[name][p]))
            metrics["predictors"].setdefault(p, {})[name] = m
        acc = float((logits.argmax(1) == places.cell).mean())
        metrics[name] = {**metrics["predictors"][geo.predictor][name], "cell_accuracy": acc}
        for b, point in base.items():
            metrics["baselines"].setdefault(b, {})[name] = distance_metrics(errors_km(true, point))
    ref = metrics["baselines"]["train_mean"]["test"]["mean_km"]
    metrics["test"]["ratio_to_train_mean"] = metrics["test"]["mean_km"] / ref
    write_json(out / "metrics.json", metrics)
    write_json(out / "report.json", {"predictor": geo.predictor, "image_size": geo.image_size})
    test = splits["test"]
    true = np.stack([test.lat, test.lon], 1)
    chosen = preds["test"][geo.predictor]
    _write_predictions(out / "predictions.csv", test.uuids, true, chosen)
    boundary = read_polygons(boundary_path)
    fig = map_figure(boundary, true, chosen,
                     f"test places: true vs predicted ({geo.predictor}), "
                     f"mean {metrics['test']['mean_km']:.1f} km")  # fmt: skip
    fig.savefig(out / "map.png", dpi=120)
    errors = {f"model ({geo.predictor})": errors_km(true, chosen)}
    errors.update({f"baseline {b}": errors_km(true, p) for b, p in base.items()})
    fig = histogram_figure(errors)
    fig.savefig(out / "errors.png", dpi=120)
    plt.close("all")
    log.info("test mean %.1f km with %s (train-mean baseline %.1f km, ratio %.3f)",
             metrics["test"]["mean_km"], geo.predictor, ref,
             metrics["test"]["ratio_to_train_mean"])  # fmt: skip
    return {**metrics, "predictor": geo.predictor}


def _write_predictions(path: Path, uuids: list[str], true: np.ndarray, pred: np.ndarray) -> None:
    km = errors_km(true, pred)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uuid", "latitude", "longitude", "pred_latitude", "pred_longitude", "km"])
        for i, uid in enumerate(uuids):
            w.writerow([uid, *(f"{v:.6f}" for v in (*true[i], *pred[i])), f"{km[i]:.3f}"])
