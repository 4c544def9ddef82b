"""``geolab match pair A B``: match two images and estimate the homography between them.

Any two images (PNG, JPEG, GeoTIFF with any number of bands; up to 1e9 pixels) are matched
with a registry matcher, a homography is fitted robustly (USAC MAGSAC), and the result is
written as a picture of the match lines (inliers green, outliers red) and/or as JSON (keypoint
pairs, inlier flags, the homography mapping image A pixels to image B pixels, timings). An
image with a side under 32 px (as the matcher sees it) is not matched: the status says why.
Output paths are checked before any work; a failed run writes nothing.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from geolab.common.io import atomic_open, check_output_path, write_json

#: Suffixes ``--out`` may end in: picture formats matplotlib writes with any backend.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff")
#: Errors of bad inputs, outputs or resources, reported in one line (OSError covers a full disk,
#: rasterio's and torch's I/O errors; RuntimeError covers MatcherUnavailable and CUDA errors).
_ERRORS = (OSError, ValueError, KeyError, RuntimeError, MemoryError, cv2.error)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geolab match", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("pair", help="match two images; draw and/or dump the matches")
    pr.add_argument("a", type=Path, help="first image")
    pr.add_argument("b", type=Path, help="second image")
    pr.add_argument(
        "--out", type=Path, help=f"picture of the matches ({', '.join(PICTURE_SUFFIXES)})"
    )
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
    """Entry point of ``geolab match``.

    Raises:
        SystemExit: one line, ``geolab match pair: <why>``, for any input or output error.
    """
    args = _parser().parse_args(argv)
    if not (args.out or args.json):
        raise SystemExit("geolab match pair: give --out and/or --json")
    try:
        return _pair(args)
    except _ERRORS as err:
        raise SystemExit(f"geolab match pair: {_message(err)}") from None


def _pair(args: argparse.Namespace) -> int:
    """Check the outputs, read, match, fit; write the JSON and the picture only at the end."""
    from geolab.match.data import read_any

    _check_outputs(args.out, args.json)
    img_a, img_b = read_any(args.a), read_any(args.b)
    matcher = _build(args)
    out, reason = _match(matcher, img_a, img_b, args)
    result, H, inl = _fit(out, reason, img_a.shape, args)
    picture = _render(args.out, img_a, img_b, out, inl, H, args.matcher) if args.out else None
    if args.json:
        write_json(args.json, result)
    if picture is not None:
        with atomic_open(args.out, "wb") as fh:
            fh.write(picture)
    summary = {k: result[k] for k in ("matcher", "status", "matches", "inliers", "ms")}
    print(json.dumps({**summary, "homography_found": H is not None}))
    return 0


def _check_outputs(out: Path | None, js: Path | None) -> None:
    """Fail before any work where an output cannot be written, so a failed run writes nothing.

    Raises:
        ValueError: a path is a directory or lies under a file, ``--out`` does not end in a
            picture suffix (the message lists them), or both options name the same file.
    """
    for path in (out, js):
        if path is not None:
            check_output_path(path)
    if out is not None and out.suffix.lower() not in PICTURE_SUFFIXES:
        raise ValueError(
            f"{out}: --out must end in a picture suffix, one of {', '.join(PICTURE_SUFFIXES)}"
        )
    if out is not None and js is not None and out.resolve() == js.resolve():
        raise ValueError(f"{out}: --out and --json name the same file")


def _build(args: argparse.Namespace) -> Callable[[np.ndarray, np.ndarray], dict[str, Any]]:
    """The registry matcher the options ask for, its networks built now so errors land here.

    Raises:
        KeyError: unknown matcher.
        ValueError: an option the matcher does not take, or a bad value.
        MatcherUnavailable: the matcher cannot run here.
    """
    from geolab.match.evaluate import RotationSearch
    from geolab.match.matchers import build_matcher, matcher_kwargs

    values = {"max_keypoints": args.max_keypoints, "resize": args.resize,
              "device": args.device, "weights": args.weights, "speed": args.speed}  # fmt: skip
    if args.int8_calibration:
        values["int8_calibration"] = args.int8_calibration
    if args.subpixel:
        values["subpixel"] = True
    kwargs = matcher_kwargs(args.matcher, values)
    for key in ("speed", "int8_calibration", "subpixel"):
        if values.get(key) and key not in kwargs:
            raise ValueError(f"{args.matcher} does not take --{key.replace('_', '-')}")
    matcher = build_matcher(args.matcher, **kwargs)
    _ = getattr(matcher, "models", None)  # build the networks now, so their errors land here
    return RotationSearch(matcher) if args.rotation_search else matcher


def _match(
    matcher: Callable, img_a: np.ndarray, img_b: np.ndarray, args: argparse.Namespace
) -> tuple[dict[str, Any], str | None]:
    """The matcher's result, or no matches and why when an image is too small to match."""
    from geolab.match.data import too_small

    reason = too_small(img_a, img_b, args.resize, names=(str(args.a), str(args.b)))
    if reason is not None:
        none = np.zeros((0, 2), np.float32)
        return {"kpts0": none, "kpts1": none, "scores": none[:, 0], "time_s": 0.0}, reason
    return matcher(img_a, img_b), None


def _fit(
    out: dict[str, Any], reason: str | None, shape: tuple[int, ...], args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray]:
    """The JSON result, the homography (None unless fitted) and the inlier flags."""
    from geolab.match.geometry import degenerate, estimate_homography

    H, inliers = estimate_homography(out["kpts0"], out["kpts1"], threshold=args.ransac_threshold)
    n = len(out["kpts0"])
    inl = inliers if inliers is not None else np.zeros(n, bool)
    h, w = shape[:2]
    status = reason or (f"too few matches ({n})" if n < 4 else (degenerate(H, w, h) or "fitted"))
    if status != "fitted":
        H = None
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "matcher": args.matcher,
        "status": status,
        "matches": n,
        "inliers": int(inl.sum()),
        "homography": None if H is None else np.asarray(H).tolist(),
        "ms": round(1000 * out["time_s"], 1),
        "kpts_a": np.round(out["kpts0"], 2).tolist(),
        "kpts_b": np.round(out["kpts1"], 2).tolist(),
        "inlier": inl.astype(bool).tolist(),
    }
    return result, H, inl


def _render(
    path: Path, a: np.ndarray, b: np.ndarray, out: dict, inl: np.ndarray, H, name: str
) -> bytes:
    """The picture of the matches, in the format of ``path``'s suffix, as bytes."""
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
    try:
        match_lines({"image0": a, "image1": b}, scored, name, ax)
        title = ax.get_title().split(", corner error")[0]
        ax.set_title(title + ("" if H is not None else " (no homography)"), fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix[1:].lower(), dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _message(err: BaseException) -> str:
    """One line for an error: its message (a KeyError's without quotes), else its type."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, MemoryError):
        return f"out of memory ({err})" if str(err) else "out of memory"
    return str(err) or type(err).__name__
