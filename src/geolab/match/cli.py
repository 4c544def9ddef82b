"""``geolab match pair A B``: match two images and estimate the homography between them.

Any two images (PNG, JPEG, GeoTIFF with any number of bands; any size) are matched with a
registry matcher, a homography is fitted robustly (USAC MAGSAC), and the result is written as
a picture of the match lines (inliers green, outliers red) and/or as JSON (keypoint pairs,
inlier flags, the homography mapping image A pixels to image B pixels, timings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from geolab.common.io import write_json


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolab match", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("pair", help="match two images; draw and/or dump the matches")
    pr.add_argument("a", type=Path, help="first image")
    pr.add_argument("b", type=Path, help="second image")
    pr.add_argument("--out", type=Path, help="picture of the matches (PNG)")
    pr.add_argument("--json", type=Path, help="matches, inliers and homography as JSON")
    pr.add_argument("--matcher", default="disk_lightglue", help="registry name")
    pr.add_argument("--max-keypoints", type=int, default=2048)
    pr.add_argument("--resize", type=int, help="longest side the matcher sees (default: as is)")
    pr.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier threshold (px)")
    pr.add_argument("--rotation-search", action="store_true", help="try 0/90/180/270 degrees")
    pr.add_argument("--weights", help="user weights (SuperPoint matchers only)")
    pr.add_argument(
        "--speed",
        nargs="*",
        default=[],
        metavar="OPTION",
        help="LightGlue matchers' speed options, e.g. onnx_int8 (docs/match.md)",
    )
    pr.add_argument(
        "--int8-calibration",
        type=Path,
        metavar="FOLDER",
        help="images that calibrate onnx_int8 (default: data/sentinel2/eolearn_slovenia, "
        "relative to the working directory)",
    )
    pr.add_argument(
        "--subpixel", action="store_true", help="DISK keypoints refined off whole pixels"
    )
    pr.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``geolab match``."""
    args = _parser().parse_args(argv)
    if not (args.out or args.json):
        raise SystemExit("geolab match pair: give --out and/or --json")
    from geolab.match.data import read_any
    from geolab.match.evaluate import RotationSearch
    from geolab.match.geometry import degenerate, estimate_homography
    from geolab.match.matchers import MatcherUnavailable, build_matcher, matcher_kwargs

    try:
        img_a, img_b = read_any(args.a), read_any(args.b)
        values = {"max_keypoints": args.max_keypoints, "resize": args.resize,
                  "device": args.device, "weights": args.weights, "speed": args.speed}  # fmt: skip
        if args.int8_calibration:
            values["int8_calibration"] = args.int8_calibration
        if args.subpixel:
            values["subpixel"] = True
        kwargs = matcher_kwargs(args.matcher, values)
        for key in ("speed", "int8_calibration", "subpixel"):
            if values.get(key) and key not in kwargs:
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"{args.matcher} does not take {flag}")
        matcher = build_matcher(args.matcher, **kwargs)
        _ = getattr(matcher, "models", None)  # build the networks now, so their errors land here
    except (FileNotFoundError, ValueError, KeyError, MatcherUnavailable) as err:
        raise SystemExit(f"geolab match pair: {err}") from None
    if args.rotation_search:
        matcher = RotationSearch(matcher)
    out = matcher(img_a, img_b)
    H, inliers = estimate_homography(out["kpts0"], out["kpts1"], threshold=args.ransac_threshold)
    inl = inliers if inliers is not None else np.zeros(len(out["kpts0"]), bool)
    n = len(out["kpts0"])
    h, w = img_a.shape[:2]
    status = f"too few matches ({n})" if n < 4 else (degenerate(H, w, h) or "fitted")
    if status != "fitted":
        H = None
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "matcher": args.matcher,
        "status": status,
        "matches": len(out["kpts0"]),
        "inliers": int(inl.sum()),
        "homography": None if H is None else np.asarray(H).tolist(),
        "ms": round(1000 * out["time_s"], 1),
        "kpts_a": np.round(out["kpts0"], 2).tolist(),
        "kpts_b": np.round(out["kpts1"], 2).tolist(),
        "inlier": inl.astype(bool).tolist(),
    }
    if args.json:
        write_json(args.json, result)
    if args.out:
        _draw(args.out, img_a, img_b, out, inl, H, args.matcher)
    summary = {k: result[k] for k in ("matcher", "status", "matches", "inliers", "ms")}
    print(json.dumps({**summary, "homography_found": H is not None}))
    return 0


def _draw(path: Path, a: np.ndarray, b: np.ndarray, out: dict, inl: np.ndarray, H, name: str):
    import matplotlib.pyplot as plt

    from geolab.match.figures import match_lines

    scored = {
        "kpts0": out["kpts0"],
        "kpts1": out["kpts1"],
        "inlier_mask": inl,
        "inliers": int(inl.sum()),
        "matches": len(inl),
        "corner_error": float("nan"),
    }
    width = 6.5 * (a.shape[1] + b.shape[1]) / max(a.shape[0], b.shape[0], 1)
    fig, ax = plt.subplots(figsize=(min(max(width, 6.0), 16.0), 6.5))
    match_lines({"image0": a, "image1": b}, scored, name, ax)
    title = ax.get_title().split(", corner error")[0]
    ax.set_title(title + ("" if H is not None else " (no homography)"), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
