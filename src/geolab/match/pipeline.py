"""The ``match`` stages' work: sample scenes, ground-truth pairs, the benchmark run."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from geolab.common.io import atomic_open, read_json, write_json
from geolab.match import augment as aug
from geolab.match.config import MatchParams
from geolab.match.data import (
    Scene,
    choose_pairs,
    eolearn_scenes,
    list_scenes,
    make_pair,
    nodata_mask,
    read_grey,
    too_small,
)
from geolab.match.evaluate import RobustParams, RotationSearch, rotate_pair, score_pair
from geolab.match.matchers import MatcherUnavailable, build_matcher, matcher_kwargs

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
EOLEARN = "eolearn_slovenia/REFERENCE_SCENES.npy"


def copy_sample(data_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write the embedded sample's scenes and a manifest like the STAC fetcher's.

    T36UYA dates are copied as they are; the eo-learn reference scenes (dates not recorded in
    the file) become grey PNGs, upscaled 4x, with ``date: null``.
    """
    data_dir, out = Path(data_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in list_scenes(data_dir / "T36UYA"):
        name = f"{s.id}{s.path.suffix}"
        with atomic_open(out / name, "wb") as fh, s.path.open("rb") as src:
            shutil.copyfileobj(src, fh)
        entries.append({"id": s.id, "place": s.place, "date": s.date.isoformat(), "file": name})
    eo = data_dir / EOLEARN
    if eo.exists():
        from PIL import Image

        for i, img in enumerate(eolearn_scenes(eo)):
            name = f"eolearn_slovenia_{i}.png"
            with atomic_open(out / name, "wb") as fh:
                Image.fromarray(img).save(fh, format="PNG")
            entries.append({"id": f"eolearn_{i}", "place": "eolearn_slovenia", "date": None,
                            "file": name})  # fmt: skip
    manifest = {"source": "sample", "scenes": entries}
    write_json(out / MANIFEST, manifest)
    return manifest


def read_manifest(scenes_dir: str | Path) -> list[Scene]:
    """Scenes listed in ``manifest.json`` (written by ``copy_sample`` or the STAC fetcher).

    Raises:
        FileNotFoundError: no manifest, or a listed file is missing (names it).
        ValueError: an entry lacks ``id``, ``place`` or ``file`` (names the entry).
    """
    import datetime as dt

    root = Path(scenes_dir)
    data = read_json(root / MANIFEST)
    scenes = []
    for i, e in enumerate(data.get("scenes", [])):
        missing = {"id", "place", "file"} - set(e)
        if missing:
            raise ValueError(f"{root / MANIFEST}: scenes[{i}] lacks {sorted(missing)}")
        path = root / e["file"]
        if not path.exists():
            raise FileNotFoundError(f"{path}: listed in {root / MANIFEST} but missing")
        date = dt.date.fromisoformat(e["date"][:10]) if e.get("date") else None
        scenes.append(Scene(e["id"], e["place"], date, path))
    return scenes


def build_pairs(scenes: list[Scene], p: MatchParams, seed: int) -> list[dict[str, Any]]:
    """Pairs warped by seeded random homographies.

    Dated pairs per category, eo-learn pairs, and seasonally augmented copies of cross-season
    pairs.
    """
    rng = np.random.default_rng(seed)
    dated = [s for s in scenes if s.date is not None]
    chosen = choose_pairs(dated, p.pairs.per_category, rng)
    undated = [s for s in scenes if s.date is None]
    chosen += [(a, b, "eolearn") for a, b in zip(undated, undated[1:], strict=False)][
        : p.pairs.eolearn_pairs
    ]
    pairs = []
    for a, b, cat in tqdm(chosen, desc="pairs", leave=False):
        pair = make_pair(read_grey(a.path), read_grey(b.path), p.pairs, rng)
        pairs.append({"id": f"{a.id}__{b.id}", "category": cat, "scene0": a.id, "scene1": b.id,
                      "date0": _iso(a), "date1": _iso(b), **pair})  # fmt: skip
    cross = [x for x in pairs if x["category"] == "cross_season"][: p.augmented_pairs]
    for x in cross:
        img1 = aug.seasonal(x["image1"], rng, p.augment)
        valid1 = x["valid1"] & ~nodata_mask(img1, p.pairs.nodata_max, p.pairs.cloud_min)
        pairs.append({**x, "id": x["id"] + "__aug", "category": "augmented", "image1": img1,
                      "valid1": valid1})  # fmt: skip
    return pairs


def _iso(scene: Scene) -> str | None:
    return scene.date.isoformat() if scene.date else None


def make_matchers(
    names: list[str], p: MatchParams, device: str, **overrides: Any
) -> tuple[dict[str, Callable], dict[str, str]]:
    """Build the named matchers; those that cannot run here are skipped with their reason.

    ``overrides`` replace shared matcher keys (e.g. ``max_keypoints`` for the rotation sweep).
    """
    values = {**_matcher_values(p), "device": device, "weights": p.superpoint_weights}
    values.update(overrides)
    built, skipped = {}, {}
    for name in names:
        try:
            built[name] = build_matcher(name, **matcher_kwargs(name, values))
        except MatcherUnavailable as err:
            log.warning("skipping %s: %s", name, err)
            skipped[name] = str(err)
    return built, skipped


def _matcher_values(p: MatchParams) -> dict[str, Any]:
    keys = ("max_keypoints", "resize", "match_threshold", "ratio", "depth_confidence",
            "width_confidence", "speed", "int8_calibration", "subpixel")  # fmt: skip
    return {k: getattr(p, k) for k in keys}


def robust_params(p: MatchParams) -> RobustParams:
    """The robust-fit keys of the section."""
    return RobustParams(
        p.ransac_method, p.ransac_threshold, p.ransac_confidence, p.ransac_max_iters
    )


def run_benchmark(
    pairs: list[dict[str, Any]], matchers: Mapping[str, Callable], robust: RobustParams
) -> dict[str, list[dict[str, Any]]]:
    """Score every matcher on every pair (with a warm-up call first, not timed)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, matcher in matchers.items():
        warm = next((x for x in pairs if _too_small(matcher, x) is None), None)
        if warm is not None:
            matcher(warm["image0"], warm["image1"])  # warm-up: model build, allocations
        rows = []
        for pair in tqdm(pairs, desc=name, leave=False):
            rows.append({"id": pair["id"], **score_or_unsolved(matcher, pair, robust)})
        out[name] = rows
    return out


def score_or_unsolved(
    matcher: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
    pair: Mapping[str, Any],
    robust: RobustParams,
) -> dict[str, Any]:
    """:func:`score_pair`, or an unsolved row when the pair is too small for the matcher.

    A pair with a side under :data:`~geolab.match.data.MIN_SIDE` (after the matcher's
    ``resize``) is not matched (DISK fails on it); its row has no matches, an infinite corner
    error, and the reason as ``status``.
    """
    reason = _too_small(matcher, pair)
    return score_pair(matcher, pair, robust) if reason is None else unsolved_row(reason)


def unsolved_row(reason: str) -> dict[str, Any]:
    """The :func:`score_pair` keys of a pair that was not matched, ``status`` saying why."""
    return {
        "status": reason,
        "matches": 0,
        "inliers": 0,
        "inlier_ratio": 0.0,
        "corner_error": math.inf,
        "corner_error_max": math.inf,
        "ms": 0.0,
        "kpts0": np.zeros((0, 2), np.float32),
        "kpts1": np.zeros((0, 2), np.float32),
        "inlier_mask": np.zeros(0, bool),
    }


def _too_small(matcher: Callable, pair: Mapping[str, Any]) -> str | None:
    """Why ``pair`` is too small for ``matcher`` (or the matcher a RotationSearch wraps)."""
    inner = getattr(matcher, "matcher", matcher)
    return too_small(pair["image0"], pair["image1"], getattr(inner, "resize", None))


def sweep_choice(
    pairs: list[dict[str, Any]], scored: Mapping[str, list[dict[str, Any]]], category: str
) -> dict[str, Any]:
    """The pair of ``category`` with the most inliers summed over the benchmarked matchers.

    The rotation sweep should start from a pair the matchers can solve upright, so that what
    it shows is the effect of the rotation. Falls back to all pairs when the category is empty.
    """
    pool = [x for x in pairs if x["category"] == category] or pairs
    inliers = {x["id"]: 0 for x in pool}
    for rows in scored.values():
        for r in rows:
            if r["id"] in inliers:
                inliers[r["id"]] += r["inliers"]
    best = max(inliers, key=lambda i: (inliers[i], i))
    return next(x for x in pool if x["id"] == best)


def rotation_sweep(
    pair: Mapping[str, Any],
    matchers: Mapping[str, Callable],
    angles: list[float],
    robust: RobustParams,
    search: bool,
) -> dict[str, dict[float, dict[str, Any]]]:
    """Corner error and inliers of each matcher (and its rotation-search variant) per angle."""
    runs: dict[str, Callable] = dict(matchers)
    if search:
        runs.update({f"{n}+rot_search": RotationSearch(m) for n, m in matchers.items()})
    out: dict[str, dict[float, dict[str, Any]]] = {n: {} for n in runs}
    for angle in tqdm(angles, desc="rotation sweep", leave=False):
        rotated = rotate_pair(pair, angle)
        for name, matcher in runs.items():
            r = score_or_unsolved(matcher, rotated, robust)
            out[name][angle] = {k: r[k] for k in ("corner_error", "inliers", "matches", "ms")}
    return out
