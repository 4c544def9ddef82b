"""Schema of the ``seg`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from geolab.common.train import TrainConfig
from geolab.datasets.dubai import check_disjoint_tiles

#: Largest ``patch_size``: tiles shorter than a patch are padded up to it, and every patch is
#: held in memory.
MAX_PATCH_SIZE = 1024


@dataclasses.dataclass
class SegParams(TrainConfig):
    """The ``seg`` section: patches, model, loss, augmentation and the training loop's keys.

    Attributes:
        scale: factor the tiles are resized by before cutting (0.5 halves each side).
        patch_size: side of the square training patches, in pixels after scaling: 16 to
            :data:`MAX_PATCH_SIZE` (``unet``: a multiple of ``2**depth``).
        stride: step between patches; patches also end flush with the right and bottom edges.
        train_tiles: Dubai tiles used for training (split by tile: neighbouring patches never
            cross splits).
        val_tiles: tiles for validation / model selection.
        test_tiles: tiles held out for the final evaluation.
        model: registry name in ``geolab.seg.models.MODELS`` (``unet``, ``unet_pretrained``).
        model_kwargs: its keyword arguments (``num_classes`` is added).
        loss: terms summed into the loss: ``ce`` (cross-entropy), ``dice``, ``focal``.
        class_weights: ``none`` or ``inverse_sqrt`` (cross-entropy/focal weights from the train
            class frequencies).
        focal_gamma: focusing exponent of the focal term.
        jitter: strength of the colour jitter (brightness, contrast, saturation), 0 = off.
        infer_scales: scales (of the original tile) at which whole tiles are predicted in
            evaluation and ``geolab seg predict``; the class probabilities are averaged
            (multi-scale inference). null: ``[scale]``. Stored in the checkpoint.
        batch_size: patches per batch.
        tta: evaluate with flip test-time augmentation (4 passes per window).
    """

    scale: float = 0.5
    patch_size: int = 256
    stride: int = 192
    train_tiles: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5, 7])
    val_tiles: list[int] = dataclasses.field(default_factory=lambda: [6])
    test_tiles: list[int] = dataclasses.field(default_factory=lambda: [8])
    model: str = "unet_pretrained"
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: list[Literal["ce", "dice", "focal"]] = dataclasses.field(
        default_factory=lambda: ["ce", "dice"]
    )
    class_weights: Literal["none", "inverse_sqrt"] = "inverse_sqrt"
    focal_gamma: float = 2.0
    jitter: float = 0.1
    infer_scales: list[float] | None = None
    batch_size: int = 8
    tta: bool = False

    #: ``make_evaluate`` and the step of :mod:`geolab.seg.train` return these.
    MONITORS: ClassVar[tuple[str, ...]] = (
        "val/miou",
        "val/pixel_accuracy",
        "val/loss",
        "train/loss",
    )

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        from geolab.seg.models import MODELS

        super().validate()
        for key in ("train_tiles", "val_tiles", "test_tiles"):
            if not getattr(self, key):
                raise ValueError(f"{key}: must name at least one tile")
        check_disjoint_tiles(
            {"train": self.train_tiles, "val": self.val_tiles, "test": self.test_tiles}
        )
        if self.model not in MODELS:
            raise ValueError(
                f"model: unknown seg model {self.model!r}; valid: {', '.join(MODELS.names())}"
            )
        if not 16 <= self.patch_size <= MAX_PATCH_SIZE:
            raise ValueError(f"patch_size: must be in 16..{MAX_PATCH_SIZE}, got {self.patch_size}")
        depth = self.model_kwargs.get("depth", 4)  # unet's forward refuses other sides
        if self.model == "unet" and depth in range(32) and self.patch_size % 2**depth:
            raise ValueError(
                f"patch_size: must be a multiple of {2**depth} for model unet of depth {depth}, "
                f"got {self.patch_size}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        for key in ("jitter", "focal_gamma"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if not 0 < self.stride <= self.patch_size:
            raise ValueError("stride must be in (0, patch_size]")
        if not self.loss:
            raise ValueError("loss must name at least one term")
        if self.infer_scales is not None and (
            not self.infer_scales or not all(0 < s <= 1 for s in self.infer_scales)
        ):
            raise ValueError(f"infer_scales must be scales in (0, 1], got {self.infer_scales}")
