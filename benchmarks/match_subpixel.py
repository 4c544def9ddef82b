"""match sub-pixel: how precisely DISK keypoints land, with and without sub-pixel refinement.

Usage: python benchmarks/match_subpixel.py [--out benchmarks/results/match_subpixel.json]

DISK puts keypoints on whole pixels of the image it sees; at 384 px that is 1.33 px of the
512 px pair. ``subpixel=True`` (:func:`geolab.match.matchers.subpixel_offsets`) moves each one to
the peak of a parabola through its heatmap scores. This script measures the effect on
localisation alone, away from the benchmark's pairs and homographies: each of the 12 T36UYA
dates (resized to 512 px, like ``match_pairs``) is matched against itself warped by a
homography this script draws (its own seed: rotation up to ±30°, scale 0.9–1.1, a few pixels
of shift), so the seasons do not enter and the true position of every match is known. Per
configuration: the median reprojection error of the matches within 4 px of the truth (the rest
are wrong matches, counted apart), the share below 1 px, the matches per pair, the
corner error of the robust fit and the time per pair (medians; 2 threads).
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from geolab.common.io import write_json
from geolab.match import geometry as G
from geolab.match.evaluate import RobustParams, score_pair
from geolab.match.matchers import DEFAULT_CALIBRATION, build_matcher

ROOT = Path(__file__).resolve().parents[1]
DATES = ROOT / "data" / "sentinel2" / "T36UYA"
#: name -> DiskLightGlue keyword arguments; each pair of rows differs only in ``subpixel``
CONFIGS: dict[str, dict[str, Any]] = {
    "512 px, 2048 kp": {"max_keypoints": 2048},
    "384 px, 1024 kp": {"max_keypoints": 1024, "resize": 384},
    "384 px, 1024 kp, int8 DISK": {"max_keypoints": 1024, "resize": 384,
                                   "speed": ["onnx_int8"], "int8_calibration": DEFAULT_CALIBRATION},
}  # fmt: skip


def warped_dates(size: int, seed: int) -> list[dict[str, Any]]:
    """A pair per date (``image0``, ``image1`` its warp, ``H``, ``valid1``), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for path in sorted(DATES.glob("*.jpg")):
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        H = G.homography_from_params(
            size,
            size,
            rotation_deg=rng.uniform(-30, 30),
            scale=rng.uniform(0.9, 1.1),
            translation=tuple(rng.uniform(-4, 4, 2)),
        )
        warped, valid = G.warp(img, H)
        out.append({"image0": img, "image1": warped, "H": H, "valid1": valid})
    return out


def measure(kwargs: dict[str, Any], pairs: list, robust: RobustParams) -> dict[str, Any]:
    """Localisation of one matcher configuration over the pairs."""
    matcher = build_matcher("disk_lightglue", device="cpu", **kwargs)
    matcher(pairs[0]["image0"], pairs[0]["image1"])  # warm-up
    errors, wrong, matches, corners, ms = [], 0, [], [], []
    for pair in pairs:
        out = score_pair(matcher, pair, robust)
        reproj = np.linalg.norm(G.project(out["kpts0"], pair["H"]) - out["kpts1"], axis=1)
        errors.append(reproj[reproj < 4])
        wrong += int((reproj >= 4).sum())
        matches.append(len(reproj))
        corners.append(out["corner_error"])
        ms.append(out["ms"])
    err = np.concatenate(errors)
    return {
        "kwargs": kwargs,
        "median_error_px": float(np.median(err)),
        "share_below_1px": float(np.mean(err < 1)),
        "correct_matches": len(err),
        "wrong_matches": wrong,
        "matches_per_pair": statistics.median(matches),
        "median_corner_error_px": statistics.median(corners),
        "ms_per_pair": statistics.median(ms),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--seed", type=int, default=2026, help="draws the homographies")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/match_subpixel.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pairs = warped_dates(args.size, args.seed)
    robust = RobustParams()
    results = {}
    for name, kwargs in tqdm(CONFIGS.items(), desc="configurations"):
        for sub in (False, True):
            label = f"{name}, sub-pixel" if sub else name
            results[label] = measure({**kwargs, "subpixel": sub}, pairs, robust)
            r = results[label]
            print(f"{label}: median {r['median_error_px']:.3f} px, "
                  f"<1px {r['share_below_1px']:.3f}, {r['ms_per_pair']:.0f} ms")  # fmt: skip
    write_json(
        args.out,
        {
            "dates": str(DATES.relative_to(ROOT)),
            "pairs": len(pairs),
            "size": args.size,
            "seed": args.seed,
            "configs": results,
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
        },
    )


if __name__ == "__main__":
    main()
