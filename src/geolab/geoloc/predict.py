"""Positions from a trained geolocation checkpoint: the library side of ``geolab geoloc predict``.

:class:`Geolocator` rebuilds the network from its self-describing checkpoint (no params file
or grid files needed: the cells' points, the normaliser and the chosen predictor travel in the
checkpoint) and turns four photos per place into latitude/longitude.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geolab.common.io import atomic_open
from geolab.common.train import load_checkpoint
from geolab.geoloc.dataset import Record
from geolab.geoloc.geo import Normaliser
from geolab.geoloc.model import MODELS
from geolab.geoloc.train import PREDICTORS, Decoder, infer, read_views


@dataclasses.dataclass
class Geolocator:
    """A trained model with what turns its outputs into positions.

    Attributes:
        model: the network, in eval mode.
        decoder: cells' points and the normaliser.
        predictor: the predictor used by :meth:`predict` (chosen on validation in training).
        image_size: the side the views are resized to.
        device: where the model runs.
        extra: the checkpoint's ``extra`` (``train_mean``, ``val_km``, ...).
    """

    model: nn.Module
    decoder: Decoder
    predictor: str
    image_size: int
    device: torch.device | str
    extra: dict[str, Any]

    @classmethod
    def load(
        cls, path: str | Path, device: torch.device | str = "cpu", predictor: str | None = None
    ) -> Geolocator:
        """Load ``models/geoloc/model.pt`` (or any geoloc checkpoint).

        Args:
            path: the checkpoint.
            device: where to run.
            predictor: override the checkpoint's predictor (one of :data:`PREDICTORS`).

        Raises:
            FileNotFoundError: no checkpoint there.
            ValueError: not a geoloc checkpoint, or an unknown predictor.
        """
        model, blob = load_checkpoint(path, MODELS.build, device)
        extra = blob["extra"]
        if not {"points", "normaliser", "centroid", "image_size"} <= set(extra):
            raise ValueError(f"{path}: not a geoloc checkpoint (no cell points or normaliser)")
        points = {k: np.asarray(v, dtype=float) for k, v in extra["points"].items()}
        decoder = Decoder(points, Normaliser.from_dict(extra["normaliser"]), extra["centroid"])
        chosen = predictor or extra.get("predictor") or f"cells_{extra['centroid']}"
        if chosen not in PREDICTORS:
            raise ValueError(f"unknown predictor {chosen!r}; valid: {', '.join(PREDICTORS)}")
        return cls(model, decoder, chosen, int(extra["image_size"]), device, extra)

    def outputs(self, views: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Cell logits and normalised x/y for ``(N, 4, S, S, 3)`` uint8 views."""
        return infer(self.model, views, self.device, batch_size)

    def predict(self, records: list[Record], batch_size: int = 64) -> np.ndarray:
        """``(N, 2)`` latitude/longitude for the records' photos, with :attr:`predictor`."""
        if not records:
            return np.zeros((0, 2))
        views = read_views(records, self.image_size)
        logits, uv = self.outputs(views, batch_size)
        return self.decoder.latlon(logits, uv, self.predictor)


def write_submission(path: str | Path, uuids: list[str], latlon: np.ndarray) -> None:
    """Write ``uuid,latitude,longitude`` (the competition's submission format) atomically."""
    if len(uuids) != len(latlon):
        raise ValueError(f"{len(uuids)} uuids but {len(latlon)} positions")
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uuid", "latitude", "longitude"])
        for uid, (lat, lon) in zip(uuids, latlon, strict=True):
            w.writerow([uid, f"{lat:.7f}", f"{lon:.7f}"])
