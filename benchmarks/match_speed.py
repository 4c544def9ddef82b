"""match speed: DISK+LightGlue made faster step by step, against the plain kornia pipeline.

Usage: python benchmarks/match_speed.py [--pairs artifacts/match/pairs] [--out ...json]

Every configuration matches the same ground-truth pairs (the same-season and cross-season pairs
of ``match_pairs``, the ones a matcher can solve), in the same run, one after the other,
``--reps`` times; ms per pair is the median over repetitions of the mean over pairs (after one
warm-up pair), AUC@5px comes from the corner errors of the homographies fitted with the same
robust estimator as ``match_evaluate``. The baseline is kornia's DISK + LightGlue as it comes:
2048 keypoints on the 512 px image, default adaptive depth/width, float32, contiguous NCHW.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from geolab.common.io import write_json
from geolab.match.data import load_pairs
from geolab.match.evaluate import RobustParams, score_pair, summarise
from geolab.match.matchers import build_matcher

#: name -> DiskLightGlue keyword arguments; each step adds one change to the previous ones.
CONFIGS: dict[str, dict[str, Any]] = {
    "plain kornia (2048 kp, 512 px)": {"max_keypoints": 2048},
    "+ channels_last": {"max_keypoints": 2048, "speed": ["channels_last"]},
    "+ int8 LightGlue": {"max_keypoints": 2048, "speed": ["channels_last", "int8"]},
    "+ bf16 DISK": {"max_keypoints": 2048, "speed": ["channels_last", "int8", "bf16"]},
    "+ 1024 keypoints": {"max_keypoints": 1024, "speed": ["channels_last", "int8", "bf16"]},
    "+ 384 px": {"max_keypoints": 1024, "resize": 384, "speed": ["channels_last", "int8", "bf16"]},
    "bf16 only (2048 kp, 512 px)": {"max_keypoints": 2048, "speed": ["bf16"]},
    "bf16, 1024 kp, 512 px": {"max_keypoints": 1024, "speed": ["bf16"]},
    "384 px, 1024 kp, float32": {"max_keypoints": 1024, "resize": 384},
    "+ ONNX Runtime DISK (2048 kp, 512 px)": {"max_keypoints": 2048, "speed": ["onnx"]},
    "384 px, 1024 kp, ONNX Runtime DISK": {"max_keypoints": 1024, "resize": 384, "speed": ["onnx"]},
    "320 px, 1024 kp, ONNX Runtime DISK": {"max_keypoints": 1024, "resize": 320, "speed": ["onnx"]},
    # on top of 384 px, 1024 kp, ONNX Runtime DISK: one change each
    "+ both images as one batch": {
        "max_keypoints": 1024, "resize": 384, "speed": ["onnx", "batch"]},
    "+ int8 LightGlue (384 px, ONNX)": {
        "max_keypoints": 1024, "resize": 384, "speed": ["onnx", "int8"]},
    "+ LightGlue width_confidence 0.95": {
        "max_keypoints": 1024, "resize": 384, "speed": ["onnx"], "width_confidence": 0.95},
    "+ LightGlue depth_confidence 0.9": {
        "max_keypoints": 1024, "resize": 384, "speed": ["onnx"], "depth_confidence": 0.9},
    "352 px instead of 384": {"max_keypoints": 1024, "resize": 352, "speed": ["onnx"]},
    "768 keypoints instead of 1024": {"max_keypoints": 768, "resize": 384, "speed": ["onnx"]},
}  # fmt: skip


def run(config: dict[str, Any], pairs: list[dict[str, Any]], robust: RobustParams) -> dict:
    """Mean ms per pair and the pair rows of one configuration (one warm-up call first)."""
    matcher = build_matcher("disk_lightglue", device="cpu", **config)
    matcher(pairs[0]["image0"], pairs[0]["image1"])
    rows = [score_pair(matcher, p, robust) for p in pairs]
    return {"ms": statistics.mean(r["ms"] for r in rows), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pairs", type=Path, default=Path("artifacts/match/pairs"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/match_speed.json"))
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--solved-px", type=float, default=5.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pairs = [x for x in load_pairs(args.pairs) if x["category"] in ("same_season", "cross_season")]
    if not pairs:
        raise SystemExit(f"{args.pairs}: no same-season or cross-season pairs")
    robust = RobustParams()
    ms: dict[str, list[float]] = {name: [] for name in CONFIGS}
    rows: dict[str, list] = {}
    for _ in range(args.reps):
        for name, config in CONFIGS.items():
            out = run(config, pairs, robust)
            ms[name].append(out["ms"])
            rows[name] = out["rows"]
    base = "plain kornia (2048 kp, 512 px)"
    results: dict[str, Any] = {"configs": {}}
    for name, config in CONFIGS.items():
        s = summarise(rows[name], args.solved_px)
        results["configs"][name] = {
            "kwargs": config,
            "ms_per_pair": statistics.median(ms[name]),
            "speedup": statistics.median(ms[base]) / statistics.median(ms[name]),
            "auc@5px": s["auc@5px"],
            "auc@10px": s["auc@10px"],
            "solved_pct": s["solved_pct"],
            "corner_errors": [round(r["corner_error"], 3) for r in rows[name]],
            "runs_ms": ms[name],
        }
    results.update(
        pairs=[x["id"] for x in pairs],
        threads=args.threads,
        reps=args.reps,
        torch=torch.__version__,
    )
    write_json(args.out, results)
    print(json.dumps({k: {m: v[m] for m in ("ms_per_pair", "speedup", "auc@5px")}
                      for k, v in results["configs"].items()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
