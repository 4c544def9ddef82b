"""match speed: DISK+LightGlue made faster step by step, against the plain kornia pipeline.

Usage: python benchmarks/match_speed.py [--pairs artifacts/match/pairs] [--out ...json]

Every configuration matches the same ground-truth pairs in the same run, one after the other,
``--reps`` times: the same-season and cross-season pairs of ``match_pairs`` (the ones a matcher
can solve), plus the pairs the same settings draw with ``--seeds`` (other dates, other
homographies; 8 pairs per seed by default), so the AUC rests on more than a handful of pairs.
ms per pair is the median over repetitions of the mean over pairs (after one warm-up pair);
AUC@5px comes from the corner errors of the homographies fitted with the same robust estimator
as ``match_evaluate``, and its difference from the plain pipeline's on the same pairs comes with
a paired bootstrap 90 % interval (``auc@5px_vs_plain``; date pairs are resampled as clusters,
since the seeds draw some of the same dates again with other homographies). The baseline is
kornia's DISK + LightGlue as it comes: 2048 keypoints on the 512 px image, default adaptive
depth/width, float32, contiguous NCHW. ``--configs int8 ONNX`` runs only the rows whose names
contain one of the words (and the baseline); with ``--exact``, those named exactly.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from tqdm import tqdm

from geolab.common.io import write_json
from geolab.match.data import load_pairs
from geolab.match.evaluate import RobustParams, score_pair, summarise
from geolab.match.geometry import auc
from geolab.match.matchers import DEFAULT_CALIBRATION, build_matcher

#: name -> DiskLightGlue keyword arguments. The first rows make one change to the plain pipeline;
#: the rows after "384 px, 1024 kp, ONNX Runtime DISK" make one change to that one.
FAST = {"max_keypoints": 1024, "resize": 384}
EOLEARN = DEFAULT_CALIBRATION
CONFIGS: dict[str, dict[str, Any]] = {
    "plain kornia (2048 kp, 512 px)": {"max_keypoints": 2048},
    "+ channels_last": {"max_keypoints": 2048, "speed": ["channels_last"]},
    "+ int8 LightGlue": {"max_keypoints": 2048, "speed": ["int8"]},
    "+ bf16 DISK": {"max_keypoints": 2048, "speed": ["bf16"]},
    "+ ONNX Runtime DISK": {"max_keypoints": 2048, "speed": ["onnx"]},
    "+ int8 ONNX Runtime DISK": {
        "max_keypoints": 2048, "speed": ["onnx_int8"], "int8_calibration": EOLEARN},
    "1024 kp": {"max_keypoints": 1024},
    "1024 kp, 384 px": {**FAST},
    "384 px, 1024 kp, ONNX Runtime DISK": {**FAST, "speed": ["onnx"]},
    "+ int8 LightGlue (384 px, ONNX)": {**FAST, "speed": ["onnx", "int8"]},
    "+ LightGlue width_confidence 0.95": {**FAST, "speed": ["onnx"], "width_confidence": 0.95},
    "+ LightGlue depth_confidence 0.9": {**FAST, "speed": ["onnx"], "depth_confidence": 0.9},
    "+ 352 px instead of 384": {**FAST, "resize": 352, "speed": ["onnx"]},
    "+ 768 keypoints instead of 1024": {**FAST, "max_keypoints": 768, "speed": ["onnx"]},
    # bfloat16 autocast of DISK in PyTorch instead of ONNX Runtime float32
    "+ bf16 DISK instead of ONNX (384 px)": {**FAST, "speed": ["bf16"]},
    # int8 DISK calibrated on the eo-learn Slovenia scenes (the default: another place) or on
    # the T36UYA dates themselves (unwarped, no ground truth; the benchmark's own tile)
    "+ int8 DISK": {**FAST, "speed": ["onnx_int8"], "int8_calibration": EOLEARN},
    "+ int8 DISK calibrated on the T36UYA dates": {
        **FAST, "speed": ["onnx_int8"], "int8_calibration": "data/sentinel2/T36UYA"},
    "+ int8 DISK, 448 px": {**FAST, "resize": 448, "speed": ["onnx_int8"],
                            "int8_calibration": EOLEARN},
    # keypoints moved off DISK's whole pixels (of the 384 px image) to the heatmap's peak
    "+ int8 DISK, sub-pixel keypoints": {**FAST, "speed": ["onnx_int8"],
                                         "int8_calibration": EOLEARN, "subpixel": True},
    # int8 DISK on the full 512 px image, with fewer keypoints than the plain 2048
    "int8 DISK, 512 px, 1536 kp": {
        "max_keypoints": 1536, "speed": ["onnx_int8"], "int8_calibration": EOLEARN},
    "int8 DISK, 512 px, 1024 kp": {
        "max_keypoints": 1024, "speed": ["onnx_int8"], "int8_calibration": EOLEARN},
}  # fmt: skip
BASE = "plain kornia (2048 kp, 512 px)"


def run(config: dict[str, Any], pairs: list[dict[str, Any]], robust: RobustParams) -> dict:
    """Mean ms per pair and the pair rows of one configuration (one warm-up call first)."""
    matcher = build_matcher("disk_lightglue", device="cpu", **config)
    matcher(pairs[0]["image0"], pairs[0]["image1"])
    rows = [score_pair(matcher, p, robust) for p in pairs]
    return {"ms": statistics.mean(r["ms"] for r in rows), "rows": rows}


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_pairs(pairs_dir: Path, scenes: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """Same- and cross-season pairs of ``match_pairs``, plus pairs drawn with other seeds.

    The extra pairs come from the same scenes and the same ``match.pairs`` settings (params.yaml)
    as ``match_pairs``: other date pairs and other random homographies.
    """
    from geolab.common.params import load_section
    from geolab.match.pipeline import build_pairs, read_manifest

    keep = ("same_season", "cross_season")
    pairs = [x for x in load_pairs(pairs_dir) if x["category"] in keep]
    if seeds:
        p = load_section("match")
        p.augmented_pairs, p.pairs.eolearn_pairs = 0, 0
        for seed in seeds:
            extra = build_pairs(read_manifest(scenes), p, seed)
            pairs += [{**x, "id": f"{x['id']}@{seed}"} for x in extra if x["category"] in keep]
    return pairs


def date_pair(pair_id: str) -> str:
    """The date pair of a benchmark pair id (the id without the ``@seed`` of a drawn pair)."""
    return pair_id.split("@")[0]


def bootstrap_draws(ids: list[str], draws: int, seed: int = 0) -> list[np.ndarray]:
    """Pair indices of ``draws`` cluster-bootstrap resamples, the same for every configuration.

    A cluster is a date pair (the id without its ``@seed``): the same two dates warped by
    other homographies are not independent samples, so they are drawn together.
    """
    clusters: dict[str, list[int]] = {}
    for i, pid in enumerate(ids):
        clusters.setdefault(date_pair(pid), []).append(i)
    groups = list(clusters.values())
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        for _ in range(draws)
    ]


def auc_difference(
    errors: list[float], base: list[float], draws: list[np.ndarray]
) -> dict[str, Any]:
    """AUC@5px minus the baseline's on the same pairs, with a 90 % interval over ``draws``."""
    e, b = np.asarray(errors), np.asarray(base)
    diffs = [auc(e[i], (5,))[5] - auc(b[i], (5,))[5] for i in draws]
    lo, hi = np.percentile(diffs, [5, 95]) if diffs else (np.nan, np.nan)
    return {"diff": auc(e, (5,))[5] - auc(b, (5,))[5], "ci90": [float(lo), float(hi)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pairs", type=Path, default=Path("artifacts/match/pairs"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/match_speed.json"))
    p.add_argument("--scenes", type=Path, default=Path("artifacts/match/scenes"))
    p.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=[1, 2, 3, 4, 5, 6],
        help="extra pairs drawn with these seeds (none: only match_pairs' pairs)",
    )
    p.add_argument(
        "--configs",
        nargs="*",
        default=None,
        help="run only the configurations whose names contain one of these",
    )
    p.add_argument(
        "--exact", action="store_true", help="--configs are whole names, not parts of names"
    )
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap draws")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--solved-px", type=float, default=5.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    wanted = args.configs
    configs = {n: c for n, c in CONFIGS.items()
               if n == BASE or not wanted or (n in wanted if args.exact else
                                              any(k in n for k in wanted))}  # fmt: skip
    unknown = set(wanted or ()) - set(CONFIGS) if args.exact else set()
    if unknown:
        raise SystemExit(f"unknown configurations {sorted(unknown)}; valid: {list(CONFIGS)}")
    pairs = bench_pairs(args.pairs, args.scenes, args.seeds)
    if not pairs:
        raise SystemExit(f"{args.pairs}: no same-season or cross-season pairs")
    robust = RobustParams()
    ms: dict[str, list[float]] = {name: [] for name in configs}
    rows: dict[str, list] = {}
    for rep in range(args.reps):
        for name, config in tqdm(configs.items(), desc=f"run {rep + 1}/{args.reps}"):
            out = run(config, pairs, robust)
            ms[name].append(out["ms"])
            rows[name] = out["rows"]
    base_errors = [r["corner_error"] for r in rows[BASE]]
    draws = bootstrap_draws([x["id"] for x in pairs], args.bootstrap)
    results: dict[str, Any] = {"configs": {}}
    for name, config in configs.items():
        s = summarise(rows[name], args.solved_px)
        errors = [r["corner_error"] for r in rows[name]]
        results["configs"][name] = {
            "kwargs": config,
            "ms_per_pair": statistics.median(ms[name]),
            "speedup": statistics.median(ms[BASE]) / statistics.median(ms[name]),
            "auc@5px": s["auc@5px"],
            "auc@5px_vs_plain": auc_difference(errors, base_errors, draws),
            "auc@10px": s["auc@10px"],
            "solved_pct": s["solved_pct"],
            "corner_errors": [round(e, 3) for e in errors],
            "runs_ms": ms[name],
        }
    results.update(
        pairs=[x["id"] for x in pairs],
        seeds=args.seeds,
        bootstrap=args.bootstrap,
        date_pairs=len({date_pair(x["id"]) for x in pairs}),
        cpu=cpu_model(),
        onnxruntime=onnxruntime.__version__,
        threads=args.threads,
        reps=args.reps,
        torch=torch.__version__,
    )
    write_json(args.out, results)
    print(json.dumps({k: {m: v[m] for m in ("ms_per_pair", "speedup", "auc@5px")}
                      for k, v in results["configs"].items()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
