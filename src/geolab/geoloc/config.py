"""Schema of the ``geoloc`` section of params.yaml.

Kept free of heavy imports (geopandas, aiohttp, torch models) so that loading params is cheap.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar, Literal

from geolab.common.train import TrainConfig

#: The representative points of a cell, in the order of the columns.
CENTROID_KINDS: tuple[str, ...] = ("centroid", "clipped", "weighted")


def check_kind(kind: str, key: str) -> None:
    """Raise a ``ValueError`` naming ``key`` unless ``kind`` is in :data:`CENTROID_KINDS`."""
    if kind not in CENTROID_KINDS:
        raise ValueError(
            f"{key}: unknown centroid kind {kind!r}; valid: {', '.join(CENTROID_KINDS)}"
        )


@dataclasses.dataclass
class GridParams:
    """The ``geoloc.grid`` keys.

    Attributes:
        cells: about how many squares cover Croatia's bounding box (see :func:`make_grid`);
            fewer remain after dropping squares off the land or without training images.
        centroid: the representative point predictions use by default: ``centroid``,
            ``clipped`` or ``weighted``.
    """

    cells: int = 30
    centroid: Literal["centroid", "clipped", "weighted"] = "weighted"

    def validate(self) -> None:
        """Check the values; a ``ValueError`` names the key."""
        if self.cells < 1:
            raise ValueError(f"cells: must be >= 1, got {self.cells}")
        check_kind(self.centroid, "centroid")


@dataclasses.dataclass
class StreetViewParams:
    """The ``geoloc.fetch`` keys (the key itself comes only from ``GOOGLE_MAPS_API_KEY``).

    Attributes:
        base_url: the Street View Static API; ``/metadata`` is appended for the metadata.
        count: panoramas wanted (four photos each).
        seed: seed of the point sampling.
        size: photo size ``WxH``, each side at most 640.
        fov: horizontal field of view in degrees (10 to 120).
        pitch: camera pitch in degrees (-90 to 90).
        radius: how far from a drawn point a panorama may be, metres.
        concurrency: requests in flight at once.
        retries: further attempts after a 429, 5xx, ``OVER_QUERY_LIMIT`` or connection error.
        backoff: base of the exponential back-off between attempts, seconds.
        timeout_s: timeout of one HTTP attempt, seconds.
        max_attempts: metadata lookups per point slot before it is given up.
        source: ``outdoor`` (outdoor panoramas only) or ``default``.
        official_only: keep only Google's own panoramas (copyright "© Google").
    """

    base_url: str = "https://maps.googleapis.com/maps/api/streetview"
    count: int = 100
    seed: int = 0
    size: str = "640x640"
    fov: float = 90.0
    pitch: float = 0.0
    radius: int = 1000
    concurrency: int = 8
    retries: int = 5
    backoff: float = 1.0
    timeout_s: float = 30.0
    max_attempts: int = 10
    source: str = "outdoor"
    official_only: bool = True

    def validate(self) -> None:
        """Check the values; a ``ValueError`` names the key."""
        m = re.fullmatch(r"(\d+)x(\d+)", self.size)
        if not m or not all(1 <= int(v) <= 640 for v in m.groups()):
            raise ValueError(f"size: expected WxH with sides 1..640, got {self.size!r}")
        if not 10 <= self.fov <= 120:
            raise ValueError(f"fov: must be in 10..120, got {self.fov}")
        if not -90 <= self.pitch <= 90:
            raise ValueError(f"pitch: must be in -90..90, got {self.pitch}")
        for key in ("radius", "concurrency", "max_attempts"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.count < 0 or self.retries < 0 or self.backoff < 0 or self.timeout_s <= 0:
            raise ValueError("count, retries and backoff must be >= 0, timeout_s > 0")
        if self.source not in ("outdoor", "default"):
            raise ValueError(f"source: expected 'outdoor' or 'default', got {self.source!r}")


@dataclasses.dataclass
class SampleParams:
    """The offline sample (``geoloc.sample``): synthetic 4-view photos of real positions.

    Attributes:
        count: places rendered, sampled uniformly inside Croatia.
        size: side of each view in pixels.
    """

    count: int = 1000
    size: int = 64

    def validate(self) -> None:
        """Check the values."""
        if self.count < 10 or self.size < 16:
            raise ValueError("sample.count must be >= 10 and sample.size >= 16")


@dataclasses.dataclass
class GeolocParams(TrainConfig):
    """The ``geoloc`` section: data, split, grid, model, loss and the training loop's keys.

    Attributes:
        source: ``sample`` (synthetic photos of real positions, offline) or ``streetview``
            (Google Street View Static API; needs ``GOOGLE_MAPS_API_KEY`` and the network).
        sample: the offline sample's options.
        fetch: the Street View fetcher's options.
        val_frac: share of places held out for validation (drawn with ``base.seed``).
        test_frac: share of places held out for the test.
        grid: the grid classes over Croatia.
        backbone: ``efficientnet_lite0`` (offline ImageNet weights), another timm model name,
            or ``torchvision:<name>`` (e.g. ``torchvision:resnext101_32x8d``).
        weights: ``offline`` (EfficientNet-Lite0 only), ``online`` (downloads the library's
            pretrained weights) or ``none``.
        pooling: how the four views' features are fused: ``concat`` (keeps which view saw
            what), ``mean`` or ``max``.
        hidden: width of the hidden layer shared by the two heads (0: linear heads).
        dropout: dropout before the heads.
        image_size: side of each view fed to the network, pixels.
        dataset_frac: share of the training places used (1.0: all).
        label_smoothing_km: tau of PIGEON's haversine label smoothing in km (0: one-hot).
        reg_weight: weight of the x/y regression loss next to the cell cross-entropy.
        freeze_epochs: epochs with the backbone frozen before it is trained too.
        jitter: per-photo brightness jitter (0 = off).
        batch_size: places (of four photos) per batch.
        predict: where positions come from: ``cells`` (probability-weighted mean of the cells'
            ``grid.centroid`` points), ``regression`` (the x/y head), ``blend`` (the mean of
            the two) or ``auto`` (whichever of these, with any kind of cell point, has the
            lowest validation mean km; chosen in geoloc_evaluate, on validation only).
    """

    source: Literal["sample", "streetview"] = "sample"
    sample: SampleParams = dataclasses.field(default_factory=SampleParams)
    fetch: StreetViewParams = dataclasses.field(default_factory=StreetViewParams)
    val_frac: float = 0.15
    test_frac: float = 0.15
    grid: GridParams = dataclasses.field(default_factory=GridParams)
    backbone: str = "efficientnet_lite0"
    weights: Literal["offline", "online", "none"] = "offline"
    pooling: Literal["concat", "mean", "max"] = "concat"
    hidden: int = 256
    dropout: float = 0.2
    image_size: int = 64
    dataset_frac: float = 1.0
    label_smoothing_km: float = 75.0
    reg_weight: float = 1.0
    freeze_epochs: int = 1
    jitter: float = 0.1
    batch_size: int = 32
    predict: Literal["auto", "cells", "regression", "blend"] = "auto"
    scheduler: Literal["constant", "cosine", "cosine_restarts", "onecycle", "plateau"] = "plateau"
    monitor: str = "val/mean_km"
    mode: Literal["min", "max"] = "min"

    #: ``make_evaluate`` and ``make_step`` of :mod:`geolab.geoloc.train` return these (one
    #: ``val/km/<predictor>`` per predictor of ``geolab.geoloc.train.PREDICTORS``).
    MONITORS: ClassVar[tuple[str, ...]] = (
        "val/mean_km",
        *(f"val/km/cells_{kind}" for kind in CENTROID_KINDS),
        "val/km/regression",
        "val/km/blend",
        "val/cell_accuracy",
        "val/reg_mse",
        "train/loss",
        "train/ce",
        "train/mse",
    )

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        super().validate()
        if not (0 < self.val_frac < 1 and 0 < self.test_frac < 1):
            raise ValueError("val_frac and test_frac must be in (0, 1)")
        if self.val_frac + self.test_frac >= 0.9:
            raise ValueError("val_frac + test_frac must leave at least 10 % for training")
        if not 0 < self.dataset_frac <= 1:
            raise ValueError(f"dataset_frac: must be in (0, 1], got {self.dataset_frac}")
        if self.image_size < 16:
            raise ValueError(f"image_size: must be >= 16, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.label_smoothing_km < 0 or self.reg_weight < 0 or self.freeze_epochs < 0:
            raise ValueError("label_smoothing_km, reg_weight and freeze_epochs must be >= 0")
        if self.weights == "offline" and self.backbone != "efficientnet_lite0":
            raise ValueError(
                f"weights: no offline weights ship for backbone {self.backbone!r} "
                "(only efficientnet_lite0); use online or none"
            )
