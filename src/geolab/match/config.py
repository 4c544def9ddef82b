"""Schema of the ``match`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Literal

from geolab.match.augment import AugmentParams
from geolab.match.data import PairParams
from geolab.match.fetch import FetchParams


@dataclasses.dataclass
class MatchParams:
    """The ``match`` section: where scenes come from, how pairs are made, matchers, scoring.

    Matcher keys (``max_keypoints`` ... ``width_confidence``) are passed to every matcher that
    takes them, so ``dvc exp run -S match.max_keypoints=1024`` changes them all.

    Attributes:
        source: ``sample`` (the embedded Sentinel-2 scenes, offline) or ``stac`` (fetch from the
            STAC API in ``fetch``; needs the network).
        fetch: the STAC search and chip options.
        pairs: how ground-truth pairs are made.
        augment: simulated seasonal changes applied to ``augmented_pairs`` extra pairs.
        augmented_pairs: cross-season pairs copied with the augmentation applied to image 1.
        matchers: registry names in ``geolab.match.matchers.MATCHERS`` to benchmark.
        superpoint_weights: user-supplied SuperPoint weights (non-commercial licence; none ship).
        max_keypoints: keypoints per image.
        resize: longest side the matchers see (None: the pair size).
        match_threshold: LightGlue's match confidence threshold.
        ratio: SIFT's ratio-test threshold.
        depth_confidence: LightGlue's early-exit confidence (-1 disables).
        width_confidence: LightGlue's point-pruning confidence (-1 disables).
        speed: optimisations of the LightGlue matchers: ``channels_last``, ``int8``, ``bf16``,
            ``onnx`` (DISK's network run by ONNX Runtime; CPU only), ``onnx_int8`` (the same
            network statically quantised to int8), ``batch`` (both images through the
            extractor at once when their sizes match).
        int8_calibration: folder of images that calibrate ``onnx_int8`` (no ground truth used).
        subpixel: DISK keypoints refined to sub-pixel positions on its heatmap.
        ransac_method: ``usac_magsac`` or ``ransac``.
        ransac_threshold: inlier threshold of the robust fit in pixels.
        ransac_confidence: confidence of the robust fit.
        ransac_max_iters: iteration cap of the robust fit.
        solved_px: a pair is solved when its mean corner error is below this.
        rotation_angles: in-plane rotations of the rotation sweep (degrees).
        rotation_matchers: matchers of the sweep.
        rotation_category: the sweep uses the pair of this category with the most inliers in
            the benchmark (its second date, unwarped, rotated by each angle).
        rotation_max_keypoints: keypoints per image in the sweep (it runs each matcher 5 times
            per angle with rotation search, so it is kept cheaper).
        rotation_search: also sweep each matcher with test-time rotation search (0/90/180/270).
        figure_pairs: pairs drawn with their match lines.
    """

    source: Literal["sample", "stac"] = "sample"
    fetch: FetchParams = dataclasses.field(default_factory=FetchParams)
    pairs: PairParams = dataclasses.field(default_factory=PairParams)
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)
    augmented_pairs: int = 2
    matchers: list[str] = dataclasses.field(
        default_factory=lambda: ["sift_ratio", "sift_mnn", "disk_lightglue", "aliked_lightglue"]
    )
    superpoint_weights: str | None = None
    max_keypoints: int = 2048
    resize: int | None = None
    match_threshold: float = 0.1
    ratio: float = 0.8
    depth_confidence: float = 0.95
    width_confidence: float = 0.99
    speed: list[Literal["channels_last", "int8", "bf16", "onnx", "onnx_int8", "batch"]] = (
        dataclasses.field(default_factory=list)
    )
    int8_calibration: str = "data/sentinel2/eolearn_slovenia"
    subpixel: bool = False
    ransac_method: Literal["usac_magsac", "ransac"] = "usac_magsac"
    ransac_threshold: float = 3.0
    ransac_confidence: float = 0.9999
    ransac_max_iters: int = 10_000
    solved_px: float = 5.0
    rotation_angles: list[float] = dataclasses.field(
        default_factory=lambda: [0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0]
    )
    rotation_matchers: list[str] = dataclasses.field(
        default_factory=lambda: ["sift_ratio", "disk_lightglue"]
    )
    rotation_category: str = "same_season"
    rotation_max_keypoints: int = 1024
    rotation_search: bool = True
    figure_pairs: int = 4

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        from geolab.match.matchers import MATCHERS

        for name in [*self.matchers, *self.rotation_matchers]:
            if name not in MATCHERS:
                raise ValueError(f"unknown matcher '{name}'; valid: {', '.join(MATCHERS.names())}")
        if self.max_keypoints <= 0 or self.solved_px <= 0 or self.ransac_threshold <= 0:
            raise ValueError("max_keypoints, solved_px and ransac_threshold must be positive")
