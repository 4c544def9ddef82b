"""Training the geolocation network with the common loop (stage ``geoloc_train``).

The loss is cross-entropy over the grid cells, with PIGEON's haversine label smoothing when
``label_smoothing_km`` > 0 (the target of cell ``k`` is proportional to
``exp(-d(place, point_k) / tau)``: near cells share the credit, far cells get none), plus
``reg_weight`` times the MSE of the normalised projected coordinates. The backbone can be frozen
for the first ``freeze_epochs`` (it then runs without gradients, so those epochs are ~3x
cheaper). Model selection is on the validation mean error in km of the ``predict`` head.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from geolab.common.io import atomic_save_torch, read_json
from geolab.common.params import to_dict
from geolab.common.train import CheckpointSpec, FitResult, TrainConfig, fit, train_loader
from geolab.geoloc.dataset import Record, load_views, read_dataset
from geolab.geoloc.geo import Normaliser, Projector, haversine_km, mean_position
from geolab.geoloc.grid import CENTROID_KINDS, centroids, load_grid
from geolab.geoloc.model import GeolocNet

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: What a position can be predicted from: the cell head with one kind of point, the x/y head,
#: or ``blend``: the mean of the x/y head and the cell head (with ``grid.centroid`` points).
PREDICTORS: tuple[str, ...] = (*(f"cells_{k}" for k in CENTROID_KINDS), "regression", "blend")


@dataclasses.dataclass
class Places:
    """Places of one split, loaded into memory.

    Attributes:
        uuids: ids, sorted.
        views: ``(N, 4, S, S, 3)`` uint8 photos in heading order.
        lat: ``(N,)`` degrees (NaN in a test set).
        lon: ``(N,)`` degrees.
        cell: ``(N,)`` grid cell ids (-1 when unknown).
        uv: ``(N, 2)`` normalised projected coordinates (NaN when unknown).
    """

    uuids: list[str]
    views: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    cell: np.ndarray
    uv: np.ndarray

    def __len__(self) -> int:
        return len(self.uuids)


def read_views(records: list[Record], size: int, desc: str = "photos") -> np.ndarray:
    """All four photos of every record, ``(N, 4, size, size, 3)`` uint8, with a progress bar."""
    out = np.empty((len(records), 4, size, size, 3), np.uint8)
    for i, rec in enumerate(tqdm(records, desc=desc, mininterval=1.0, leave=False)):
        out[i] = load_views(rec, size)
    return out


def load_places(
    dataset: str | Path,
    labels: dict[str, Any],
    split: str,
    size: int,
    frac: float = 1.0,
    seed: int = 0,
    records: list[Record] | None = None,
) -> Places:
    """Load one split of the geoloc_fetch dataset with its geoloc_grid labels.

    Args:
        dataset: the dataset folder.
        labels: ``labels.json`` of geoloc_grid (``places``: uuid -> split, u, v, cell).
        split: ``train``, ``val`` or ``test``.
        size: side of the views in pixels.
        frac: keep this share of the split's places (drawn with ``seed``; ``dataset_frac``).
        seed: the draw's seed.
        records: the dataset's records when the caller has read them already (loading
            several splits reads ``data.csv`` once); default: read from ``dataset``.

    Raises:
        ValueError: the split is empty, or the dataset and the labels disagree (names both).
    """
    if records is None:
        records, _ = read_dataset(dataset, check_images=False)
    by_id = {r.uuid: r for r in records}
    places = labels["places"]
    ids = sorted(u for u, p in places.items() if p["split"] == split)
    missing = [u for u in ids if u not in by_id]
    if missing:
        raise ValueError(
            f"{dataset}: {len(missing)} places of the grid labels are not in the dataset "
            f"(e.g. {missing[0]}): rerun geoloc_grid"
        )
    if frac < 1.0 and ids:
        keep = max(1, round(frac * len(ids)))
        pick = np.random.default_rng(seed).permutation(len(ids))[:keep]
        ids = [ids[i] for i in sorted(pick)]
    if not ids:
        raise ValueError(f"split '{split}' has no places")
    recs = [by_id[u] for u in ids]
    return Places(
        uuids=ids,
        views=read_views(recs, size, desc=f"{split} photos"),
        lat=np.array([r.lat for r in recs], dtype=float),
        lon=np.array([r.lon for r in recs], dtype=float),
        cell=np.array([places[u]["cell"] for u in ids], dtype=np.int64),
        uv=np.array([[places[u]["u"], places[u]["v"]] for u in ids], dtype=np.float32),
    )


def soft_targets(
    lat: np.ndarray, lon: np.ndarray, cell: np.ndarray, points_latlon: np.ndarray, tau_km: float
) -> np.ndarray:
    """Cell targets ``(N, K)``: one-hot on ``cell``, or haversine-smoothed when ``tau_km`` > 0.

    With smoothing (PIGEON, Haas et al. 2024) the target of cell ``k`` is proportional to
    ``exp(-(d(place, point_k) - d(place, point_cell)) / tau_km)``, normalised to sum to 1.
    """
    k = len(points_latlon)
    if tau_km <= 0:
        return np.eye(k, dtype=np.float32)[cell]
    plat, plon = points_latlon[None, :, 0], points_latlon[None, :, 1]
    d = haversine_km(lat[:, None], lon[:, None], plat, plon)
    own = d[np.arange(len(cell)), cell][:, None]
    logits = -(d - own) / tau_km
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


class ViewsDataset(Dataset):
    """``(views, target, uv)`` with ImageNet normalisation and optional per-photo jitter."""

    def __init__(
        self, views: np.ndarray, targets: np.ndarray, uv: np.ndarray, jitter: float = 0.0
    ) -> None:
        self.views, self.targets, self.uv, self.jitter = views, targets, uv, jitter
        self.mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.views[i]).permute(0, 3, 1, 2).float() / 255
        if self.jitter > 0:
            gain = 1 + self.jitter * (2 * torch.rand(x.shape[0], 1, 1, 1) - 1)
            x = (x * gain).clamp(0, 1)
        return (
            (x - self.mean) / self.std,
            torch.from_numpy(self.targets[i]),
            torch.from_numpy(self.uv[i]),
        )


def normalise_views(views: np.ndarray) -> torch.Tensor:
    """``(N, 4, S, S, 3)`` uint8 -> ``(N, 4, 3, S, S)`` float, ImageNet-normalised."""
    x = torch.from_numpy(views).permute(0, 1, 4, 2, 3).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def infer(
    model: nn.Module, views: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Cell logits ``(N, K)`` and normalised x/y ``(N, 2)`` for uint8 views, in eval mode."""
    model.eval()
    logits, uv = [], []
    for start in range(0, len(views), batch_size):
        x = normalise_views(views[start : start + batch_size]).to(device)
        out = model(x)
        logits.append(out["logits"].float().cpu())
        uv.append(out["uv"].float().cpu())
    return torch.cat(logits).numpy(), torch.cat(uv).numpy()


@dataclasses.dataclass
class Decoder:
    """Turns the network's outputs into positions: every predictor of :data:`PREDICTORS`.

    Attributes:
        points: ``{kind: (K, 2)}`` the cells' representative points in EPSG:3765 metres.
        normaliser: the train-only min-max normaliser of the x/y head.
        kind: the kind of point ``blend`` uses (``grid.centroid``).
    """

    points: dict[str, np.ndarray]
    normaliser: Normaliser
    kind: str = "weighted"

    @classmethod
    def from_grid(cls, grid: Any, normaliser: Normaliser, kind: str = "weighted") -> Decoder:
        """From a geoloc_grid GeoDataFrame and normaliser."""
        return cls({k: centroids(grid, k) for k in CENTROID_KINDS}, normaliser, kind)

    def xy(self, logits: np.ndarray, uv: np.ndarray, predictor: str) -> np.ndarray:
        """Projected ``(N, 2)`` positions from one predictor."""
        from geolab.geoloc.model import expected_xy

        if predictor == "regression":
            x, y = self.normaliser.inverse(uv[:, 0], uv[:, 1])
            return np.stack([x, y], 1)
        if predictor == "blend":
            cells = self.xy(logits, uv, f"cells_{self.kind}")
            return (self.xy(logits, uv, "regression") + cells) / 2
        if not predictor.startswith("cells_") or predictor[6:] not in self.points:
            raise ValueError(f"unknown predictor {predictor!r}; valid: {', '.join(PREDICTORS)}")
        return expected_xy(logits, self.points[predictor[6:]])

    def latlon_points(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Latitudes and longitudes of the cells' points of one kind."""
        lat, lon = Projector().to_latlon(self.points[kind][:, 0], self.points[kind][:, 1])
        return np.asarray(lat), np.asarray(lon)

    def latlon(self, logits: np.ndarray, uv: np.ndarray, predictor: str) -> np.ndarray:
        """``(N, 2)`` latitude/longitude in degrees from one predictor."""
        xy = self.xy(logits, uv, predictor)
        lat, lon = Projector().to_latlon(xy[:, 0], xy[:, 1])
        return np.stack([lat, lon], 1)


def make_evaluate(
    val: Places, decoder: Decoder, predictor: str, device: torch.device, batch_size: int
) -> Callable[[nn.Module], dict[str, float]]:
    """Validation: mean km of every predictor; ``mean_km``: ``predictor``'s (``auto``: the best)."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        logits, uv = infer(model, val.views, device, batch_size)
        out = {}
        for name in PREDICTORS:
            ll = decoder.latlon(logits, uv, name)
            out[f"km/{name}"] = float(haversine_km(val.lat, val.lon, ll[:, 0], ll[:, 1]).mean())
        km = {p: out[f"km/{p}"] for p in PREDICTORS}
        out["mean_km"] = min(km.values()) if predictor == "auto" else km[predictor]
        out["cell_accuracy"] = float((logits.argmax(1) == val.cell).mean())
        out["reg_mse"] = float(((uv - val.uv) ** 2).mean())
        return out

    return evaluate


def make_step(reg_weight: float) -> Callable:
    """Cross-entropy against (soft) cell targets plus ``reg_weight`` x MSE on x/y."""

    def step(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        views, target, uv = batch
        out = model(views)
        ce = -(target * out["logits"].log_softmax(1)).sum(1).mean()
        mse = nn.functional.mse_loss(out["uv"], uv)
        return {"loss": ce + reg_weight * mse, "ce": ce, "mse": mse}

    return step


def train(
    params: Any,
    dataset: str | Path,
    grid_dir: str | Path,
    model_out: str | Path,
    device: torch.device,
    live: Any = None,
    seed: int = 0,
    resolved: dict | None = None,
) -> FitResult:
    """Train ``GeolocNet`` on the train places; select on the validation mean km.

    Args:
        params: the ``geoloc`` section (:class:`geolab.geoloc.config.GeolocParams`).
        dataset: the geoloc_fetch dataset folder.
        grid_dir: the geoloc_grid output folder (``grid.gpkg``, ``labels.json``).
        model_out: the checkpoint to write.
        device: where to train.
        live: the stage's dvclive logger.
        seed: ``base.seed`` (the ``dataset_frac`` draw and the loader's shuffling).
        resolved: the resolved params stored in the checkpoint.
    """
    grid_dir = Path(grid_dir)
    labels = read_json(grid_dir / "labels.json")
    grid = load_grid(grid_dir / "grid.gpkg")
    normaliser = Normaliser.from_dict(labels["normaliser"])
    kind = params.grid.centroid
    decoder = Decoder.from_grid(grid, normaliser, kind)
    ordered = grid.sort_values("cell_id")
    if list(ordered["cell_id"]) != list(range(len(grid))):
        raise ValueError(f"{grid_dir / 'grid.gpkg'}: cell ids must be 0..K-1")
    points_ll = ordered[[f"{kind}_lat", f"{kind}_lon"]].to_numpy(dtype=float)
    records, _ = read_dataset(dataset, check_images=False)
    size = params.image_size
    tr = load_places(dataset, labels, "train", size, params.dataset_frac, seed, records)
    va = load_places(dataset, labels, "val", size, records=records)
    log.info("geoloc: %d train / %d val places, %d cells", len(tr), len(va), len(grid))
    targets = soft_targets(tr.lat, tr.lon, tr.cell, points_ll, params.label_smoothing_km)
    loader = train_loader(
        ViewsDataset(tr.views, targets, tr.uv, params.jitter), params.batch_size, seed
    )
    kwargs = {"num_cells": len(grid), **model_kwargs(params)}
    model = GeolocNet(**kwargs)
    freeze = params.freeze_epochs

    def on_epoch(net: nn.Module, epoch: int) -> None:
        frozen = epoch <= freeze
        if frozen != net.frozen:
            log.info("epoch %d: backbone %s", epoch, "frozen" if frozen else "trainable")
        net.freeze_backbone(frozen)

    ckpt = CheckpointSpec(
        path=Path(model_out),
        model_name="geoloc_net",
        model_kwargs={**kwargs, "weights": "none"},
        params=resolved or {"geoloc": to_dict(params)},
        extra={
            "normaliser": normaliser.to_dict(),
            "points": {k: v.tolist() for k, v in decoder.points.items()},
            "predict": params.predict,
            "centroid": kind,
            "image_size": params.image_size,
            "train_mean": list(mean_position(tr.lat, tr.lon)),
        },
    )
    cfg = TrainConfig.from_params(params)
    result = fit(
        model,
        loader,
        cfg,
        make_step(params.reg_weight),
        ckpt,
        evaluate=make_evaluate(va, decoder, predictor_name(params), device, params.batch_size),
        live=live,
        device=device,
        on_epoch=on_epoch,
    )
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    val_km = {p: best[f"val/km/{p}"] for p in PREDICTORS}
    chosen = choose_predictor(val_km, predictor_name(params))
    log.info("predictor: %s (validation mean %.1f km at epoch %d)", chosen, val_km[chosen],
             result.best_epoch)  # fmt: skip
    set_checkpoint_extra(model_out, predictor=chosen, val_km=val_km)
    return result


def choose_predictor(val_km: dict[str, float], predict: str) -> str:
    """``predict`` itself, or for ``auto`` the predictor with the lowest validation mean km."""
    if predict != "auto":
        if predict not in val_km:
            raise ValueError(f"unknown predictor {predict!r}; valid: {', '.join(val_km)}")
        return predict
    return min(val_km, key=lambda k: (val_km[k], k))


def set_checkpoint_extra(path: str | Path, **extra: Any) -> None:
    """Add keys to the ``extra`` of a written checkpoint (atomically)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["extra"].update(extra)
    atomic_save_torch(blob, path)


def predictor_name(params: Any) -> str:
    """The predictor named by ``predict`` (with ``grid.centroid`` for ``cells``), or ``auto``."""
    if params.predict == "cells":
        return f"cells_{params.grid.centroid}"
    return params.predict


def model_kwargs(params: Any) -> dict[str, Any]:
    """The ``GeolocNet`` keyword arguments (other than ``num_cells``) from the params."""
    return {
        "backbone": params.backbone,
        "weights": params.weights,
        "pooling": params.pooling,
        "hidden": params.hidden,
        "dropout": params.dropout,
    }
