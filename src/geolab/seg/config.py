"""Schema of the ``seg`` section of params.yaml (data preparation so far)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SegParams:
    """The ``seg`` section.

    Attributes:
        scale: factor the tiles are resized by before cutting (0.5 halves each side).
        patch_size: side of the square training patches, in pixels after scaling.
        stride: step between patches; patches also end flush with the right and bottom edges.
        train_tiles: Dubai tiles used for training (split by tile: neighbouring patches never
            cross splits).
        val_tiles: tiles for validation / model selection.
        test_tiles: tiles held out for the final evaluation.
    """

    scale: float = 0.5
    patch_size: int = 256
    stride: int = 192
    train_tiles: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5, 7])
    val_tiles: list[int] = dataclasses.field(default_factory=lambda: [6])
    test_tiles: list[int] = dataclasses.field(default_factory=lambda: [8])

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        sets = [set(self.train_tiles), set(self.val_tiles), set(self.test_tiles)]
        if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
            raise ValueError("train_tiles, val_tiles and test_tiles must not overlap")
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if not 0 < self.stride <= self.patch_size:
            raise ValueError("stride must be in (0, patch_size]")
