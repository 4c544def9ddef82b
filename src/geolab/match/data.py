"""Scenes and ground-truth pairs of the ``match`` benchmark.

A *scene* is one date of one place, as an 8-bit image. The embedded sample has 12 dates of the
Sentinel-2 tile T36UYA (identical footprint, so the true alignment between any two dates is the
identity) and 5 eo-learn scenes near Ljubljana. A *pair* is two dates of the same place; the
second image is warped by a known random homography, so the true transform is known exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from geolab.match.geometry import random_homography, warp

_T36 = re.compile(r"^(?P<tile>T\d\d[A-Z]{3})_(?P<date>\d{8})T\d{6}_TCI\.(jpg|png|tif)$")
SEASONS = {m: ("winter", "spring", "summer", "autumn")[(m % 12) // 3] for m in range(1, 13)}
Category = Literal["same_season", "cross_season", "cross_year"]
CATEGORIES: tuple[str, ...] = ("same_season", "cross_season", "cross_year")
IMAGE_KEYS = ("image0", "image1", "image1_raw", "valid0", "valid1", "valid1_raw")
#: Most pixels :func:`read_any` decodes. PIL refuses images over ~179 Mpx (``Image.MAX_IMAGE_
#: PIXELS`` x 2) as possible decompression bombs; satellite scenes and mosaics can be larger.
MAX_PIXELS = 1_000_000_000
#: PIL modes :func:`read_any` converts to grey itself (8 bits per channel).
_PIL_MODES = ("L", "RGB", "RGBA", "P", "LA")
#: Smallest side, in pixels, of an image a matcher is given (after its ``resize``). DISK's
#: network halves an image four times, padded to a multiple of 16 px, and fails when one cell
#: is left (both sides <= 16 px); SIFT finds next to no keypoints below about 30 px, so smaller
#: images are reported as not solved for every matcher instead of being matched.
MIN_SIDE = 32


@dataclasses.dataclass(frozen=True)
class Scene:
    """One image of a place on one date (``date`` None when unknown)."""

    id: str
    place: str
    date: dt.date | None
    path: Path
    band: int | None = None  # index into a stacked file, else None


def season(date: dt.date) -> str:
    """Meteorological season (northern hemisphere)."""
    return SEASONS[date.month]


def category(a: dt.date, b: dt.date) -> Category:
    """Label a pair of dates.

    ``cross_year``: different years and more than half a year apart; ``same_season``: the same
    meteorological season within three months; otherwise ``cross_season``.
    """
    days = abs((b - a).days)
    if a.year != b.year and days > 183:
        return "cross_year"
    return "same_season" if season(a) == season(b) and days <= 92 else "cross_season"


def list_scenes(root: str | Path) -> list[Scene]:
    """Sentinel-2 true-colour files named ``<tile>_<YYYYMMDD>T<hhmmss>_TCI.<ext>`` under root.

    Searches ``root`` and its sub-folders; a folder that has none is skipped.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no scene.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    scenes = []
    for path in sorted(root.rglob("*_TCI.*")):
        m = _T36.match(path.name)
        if m:
            date = dt.datetime.strptime(m["date"], "%Y%m%d").date()
            scenes.append(Scene(f"{m['tile']}_{m['date']}", m["tile"], date, path))
    if not scenes:
        raise FileNotFoundError(f"{root}: no scene files named <tile>_<YYYYMMDD>T<hhmmss>_TCI.*")
    return scenes


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W)`` uint8 grey.

    Raises:
        ValueError: the file is not a readable image (names the file).
    """
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


def read_any(path: str | Path) -> np.ndarray:
    """Read any image as ``(H, W)`` uint8 grey: what PIL opens, else GeoTIFFs through rasterio.

    Rasters with more than 8 bits or many bands use their first three bands (one if fewer),
    stretched between the 2nd and 98th percentile of the valid pixels (finite and above 0).
    Only files PIL cannot identify, and TIFFs it cannot decode (compressions its libtiff
    lacks), go to rasterio; a truncated or corrupt PNG or JPEG is an error, not black pixels.
    Images up to :data:`MAX_PIXELS` are read (PIL's own limit is lifted only while reading).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable image (truncated, corrupt, unknown format, empty) or larger
            than :data:`MAX_PIXELS`; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not an image")
    grey = _read_pil(path)
    return grey if grey is not None else _read_rasterio(path)


@contextlib.contextmanager
def _pil_pixel_limit(limit: int | None) -> Iterator[None]:
    """Set PIL's decompression-bomb limit (a module global) for the block, then restore it.

    Not thread-safe: another thread opening images meanwhile sees ``limit`` too.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_pixels(path: Path, width: int, height: int) -> None:
    """Raise when an image is larger than :data:`MAX_PIXELS` (before its pixels are decoded).

    Raises:
        ValueError: too many pixels; names the file and its size.
    """
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{path}: {width}x{height} px ({width * height:,} pixels) is more than the "
            f"{MAX_PIXELS:,} this reader accepts; crop or downsample it first"
        )


def _read_pil(path: Path) -> np.ndarray | None:
    """Grey pixels decoded by PIL, or None for a file that rasterio should read instead.

    None when PIL cannot identify the format, for a TIFF that PIL cannot decode, and for modes
    other than 8-bit grey, RGB(A) and palette (16-bit or float images keep rasterio's stretch).

    Raises:
        ValueError: too large, unreadable, or a truncated or corrupt image (names the file).
    """
    with _pil_pixel_limit(None):  # :func:`_check_pixels` applies MAX_PIXELS instead
        try:
            im = Image.open(path)
        except UnidentifiedImageError:
            return None
        except OSError as err:
            raise ValueError(f"{path}: cannot open it ({err.strerror or err})") from err
        with im:
            _check_pixels(path, *im.size)
            if im.format == "TIFF" and im.mode not in _PIL_MODES:
                return None
            try:
                im.load()
            except Exception as err:  # PIL's decoders raise OSError, ValueError, SyntaxError...
                if im.format == "TIFF":
                    return None  # GDAL reads every GeoTIFF compression, and reports truncation
                raise ValueError(
                    f"{path}: truncated or corrupt {im.format} image, cannot decode it ({err})"
                ) from err
            return np.asarray(im.convert("L")) if im.mode in _PIL_MODES else None


def _read_rasterio(path: Path) -> np.ndarray:
    """Grey pixels of a raster GDAL reads (first three bands averaged, percentile-stretched).

    Raises:
        ValueError: not a readable raster, or too large (names the file).
    """
    import rasterio

    try:
        ds = rasterio.open(path)
    except Exception as err:  # rasterio raises its own error types
        raise ValueError(f"{path}: not a readable image ({_cause(err)})") from err
    with ds:
        _check_pixels(path, ds.width, ds.height)
        try:
            data = ds.read(list(range(1, min(ds.count, 3) + 1))).astype(np.float32)
        except Exception as err:
            raise ValueError(f"{path}: not a readable image ({_cause(err)})") from err
    grey = data.mean(0)
    grey[~np.isfinite(grey)] = 0  # NaN or infinite no-data counts as no-data (0)
    valid = grey[grey > 0]
    lo, hi = np.percentile(valid, [2, 98]) if valid.size else (0.0, 1.0)
    return (np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _cause(err: BaseException) -> str:
    """The message of ``err``, or of the error it wraps when it only points there.

    rasterio's ``Read failed. See previous exception for details.`` wraps GDAL's own message
    (e.g. which block of a truncated TIFF failed), which a one-line error would otherwise lose.
    """
    while "previous exception" in str(err):
        inner = err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    return str(err)


def matcher_size(shape: Sequence[int], resize: int | None) -> tuple[int, int]:
    """``(height, width)`` of an image of ``shape`` once a matcher resized its longest side.

    The same rounding as :func:`geolab.match.matchers.resize_longest`, without resizing.
    """
    h, w = int(shape[0]), int(shape[1])
    if resize is None or max(h, w) == resize:
        return h, w
    factor = resize / max(h, w)
    return max(1, round(h * factor)), max(1, round(w * factor))


def too_small(
    img0: np.ndarray,
    img1: np.ndarray,
    resize: int | None = None,
    names: Sequence[str] = ("image 0", "image 1"),
) -> str | None:
    """Why two images are too small to match (see :data:`MIN_SIDE`), or None when they are not.

    Args:
        img0: the first image, ``(H, W)`` or ``(H, W, C)``.
        img1: the second image.
        resize: the longest side the matcher resizes images to (None: as given).
        names: what to call the two images in the reason.
    """
    for name, img in zip(names, (img0, img1), strict=True):
        h, w = img.shape[:2]
        seen_h, seen_w = matcher_size((h, w), resize)
        if min(seen_h, seen_w) < MIN_SIDE:
            resized = "" if (seen_h, seen_w) == (h, w) else f" (resized to {seen_w}x{seen_h} px)"
            return (
                f"{name} too small to match: {w}x{h} px{resized}; the matchers need both sides "
                f"of at least {MIN_SIDE} px"
            )
    return None


def eolearn_scenes(path: str | Path, upscale: int = 4) -> list[np.ndarray]:
    """The eo-learn reference scenes as grey images (B4, B3, B2 → luminance), upscaled.

    ``REFERENCE_SCENES.npy`` is float32 ``(dates, H, W, 13)`` L1C reflectance; each date is
    stretched with the same 2–98 % limits so brightness changes between dates are kept.
    """
    cube = np.load(path)
    if cube.ndim != 4 or cube.shape[-1] != 13:
        raise ValueError(f"{path}: expected (dates, H, W, 13) reflectance, got {cube.shape}")
    rgb = cube[..., [3, 2, 1]]
    lo, hi = np.percentile(rgb, [2, 98])
    grey = (np.clip((rgb - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8).mean(-1)
    out = []
    for g in grey.astype(np.uint8):
        h, w = g.shape
        out.append(cv2.resize(g, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC))
    return out


def nodata_mask(image: np.ndarray, nodata_max: int = 0, cloud_min: int = 250) -> np.ndarray:
    """Pixels without ground signal (``True``), slightly dilated.

    No-data fill is ``<= nodata_max``; saturated cloud or snow is ``>= cloud_min``.
    """
    bad = (image <= nodata_max) | (image >= cloud_min)
    return cv2.dilate(bad.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def choose_pairs(
    scenes: Sequence[Scene], per_category: int, rng: np.random.Generator
) -> list[tuple[Scene, Scene, str]]:
    """Up to ``per_category`` date pairs of the same place per category, drawn with ``rng``."""
    by_cat: dict[str, list[tuple[Scene, Scene]]] = {c: [] for c in CATEGORIES}
    for a, b in itertools.combinations(sorted(scenes, key=lambda s: (s.place, s.date)), 2):
        if a.place == b.place and a.date and b.date:
            by_cat[category(a.date, b.date)].append((a, b))
    out = []
    for cat, pairs in by_cat.items():
        idx = rng.permutation(len(pairs))[:per_category]
        out += [(*pairs[i], cat) for i in sorted(idx)]
    return out


@dataclasses.dataclass
class PairParams:
    """How pairs are made (the ``match.pairs`` keys).

    Attributes:
        size: side of the square images the pairs are resized to.
        per_category: pairs per category (same_season, cross_season, cross_year).
        max_rotation_deg: rotation drawn from ±this.
        scale_range: scale drawn log-uniformly from this range.
        max_shear: shear drawn from ±this.
        max_perspective: perspective terms drawn from ±this (divided by the image size).
        eolearn_pairs: pairs of eo-learn dates to add (0 = none).
        nodata_max: grey level at or below which a pixel is no-data.
        cloud_min: grey level at or above which a pixel is saturated cloud/snow.
    """

    size: int = 512
    per_category: int = 4
    max_rotation_deg: float = 30.0
    scale_range: list[float] = dataclasses.field(default_factory=lambda: [0.8, 1.25])
    max_shear: float = 0.1
    max_perspective: float = 0.1
    eolearn_pairs: int = 2
    nodata_max: int = 0
    cloud_min: int = 250


def make_pair(
    img0: np.ndarray, img1: np.ndarray, p: PairParams, rng: np.random.Generator
) -> dict[str, Any]:
    """Resize two co-registered images to ``p.size`` and warp the second by a random homography.

    Returns:
        ``image0``, ``image1`` (uint8 ``(S, S)``), ``valid0``, ``valid1`` (bool masks of usable
        pixels), ``H`` (3x3, maps image0 pixels to image1 pixels), and the second image before
        the warp, ``image1_raw`` / ``valid1_raw`` (for the rotation sweep).
    """
    size = (p.size, p.size)
    a = cv2.resize(img0, size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(img1, size, interpolation=cv2.INTER_AREA)
    H = random_homography(
        rng,
        p.size,
        p.size,
        max_rotation_deg=p.max_rotation_deg,
        scale_range=tuple(p.scale_range),
        max_shear=p.max_shear,
        max_perspective=p.max_perspective,
    )
    b_warped, inside = warp(b, H)
    valid1 = inside & ~nodata_mask(b_warped, p.nodata_max, p.cloud_min)
    valid0 = ~nodata_mask(a, p.nodata_max, p.cloud_min)
    return {
        "image0": a,
        "image1": b_warped,
        "valid0": valid0,
        "valid1": valid1,
        "H": H,
        "image1_raw": b,
        "valid1_raw": ~nodata_mask(b, p.nodata_max, p.cloud_min),
    }


def save_pairs(out_dir: str | Path, pairs: list[dict[str, Any]]) -> None:
    """Write each pair's images as PNG and everything else into ``pairs.json`` (atomic)."""
    from geolab.common.io import atomic_open, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for pair in pairs:
        files = {}
        for key in IMAGE_KEYS:
            name = f"{pair['id']}_{key}.png"
            data = pair[key].astype(np.uint8) * (255 if pair[key].dtype == bool else 1)
            with atomic_open(out / name, "wb") as fh:
                Image.fromarray(data).save(fh, format="PNG")
            files[key] = name
        meta = {k: v for k, v in pair.items() if k not in files}
        meta["H"] = np.asarray(pair["H"]).tolist()
        index.append({**meta, "files": files})
    write_json(out / "pairs.json", index)


def load_pairs(pairs_dir: str | Path) -> list[dict[str, Any]]:
    """Read what :func:`save_pairs` wrote (images as arrays, ``H`` as a 3x3 array).

    Raises:
        FileNotFoundError: no ``pairs.json`` (names the folder).
    """
    root = Path(pairs_dir)
    index_path = root / "pairs.json"
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path}: missing (run `dvc repro match_pairs`)")
    out = []
    for meta in json.loads(index_path.read_text(encoding="utf-8")):
        pair = {k: v for k, v in meta.items() if k != "files"}
        pair["H"] = np.array(meta["H"], dtype=np.float64)
        for key, name in meta["files"].items():
            arr = read_grey(root / name)
            pair[key] = arr > 127 if key.startswith("valid") else arr
        out.append(pair)
    return out
