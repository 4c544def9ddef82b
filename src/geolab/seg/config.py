"""Schema of the ``seg`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from geolab.common.train import TrainConfig
from geolab.datasets.dubai import check_disjoint_tiles


@dataclasses.dataclass
class SegParams(TrainConfig):
    """The ``seg`` section: patches, model, loss, augmentation and the training loop's keys.

    Attributes:
        scale: factor the tiles are resized by before cutting (0.5 halves each side).
        patch_size: side of the square training patches, in pixels after scaling.
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

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        check_disjoint_tiles(
            {"train": self.train_tiles, "val": self.val_tiles, "test": self.test_tiles}
        )
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
