"""Schema of the ``cls`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from geolab.common.train import TrainConfig
from geolab.datasets.dubai import check_disjoint_tiles


@dataclasses.dataclass
class ClsParams(TrainConfig):
    """The ``cls`` section: patch extraction, the model, and the training loop's keys.

    Attributes:
        patch_size: side of the square patches cut from the tiles, in pixels.
        stride: step between patches, in pixels.
        resize: side the patches are resized to for the model.
        purity: least fraction of a patch's labelled pixels its majority class must cover.
        train_tiles: Dubai tiles used for training (split by tile: no leakage between splits).
        val_tiles: tiles used for validation / model selection.
        test_tiles: tiles held out for the final evaluation.
        batch_size: mini-batch size.
        label_smoothing: cross-entropy label smoothing.
        model: registry name of the model (``geolab.cls.models.MODELS``).
        model_kwargs: keyword arguments of that model.
    """

    patch_size: int = 64
    stride: int = 64
    resize: int = 32
    purity: float = 0.7
    train_tiles: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    val_tiles: list[int] = dataclasses.field(default_factory=lambda: [7])
    test_tiles: list[int] = dataclasses.field(default_factory=lambda: [8])
    batch_size: int = 64
    label_smoothing: float = 0.0
    model: str = "simple_cnn"
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    #: ``make_evaluate`` and ``make_step`` of :mod:`geolab.cls.train` return these.
    MONITORS: ClassVar[tuple[str, ...]] = (
        "val/accuracy",
        "val/loss",
        "train/accuracy",
        "train/loss",
    )

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        from geolab.cls.models import MODELS

        super().validate()
        for key in ("train_tiles", "val_tiles", "test_tiles"):
            if not getattr(self, key):
                raise ValueError(f"{key}: must name at least one tile")
        check_disjoint_tiles(
            {"train": self.train_tiles, "val": self.val_tiles, "test": self.test_tiles}
        )
        if not 0.0 < self.purity <= 1.0:
            raise ValueError(f"purity must be in (0, 1], got {self.purity}")
        if self.stride <= 0 or self.patch_size <= 0 or self.resize <= 0:
            raise ValueError("patch_size, stride and resize must be positive")
        if self.model not in MODELS:
            raise ValueError(
                f"model: unknown cls model {self.model!r}; valid: {', '.join(MODELS.names())}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")
