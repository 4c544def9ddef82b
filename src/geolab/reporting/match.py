"""The generated tables of docs/match.md, read from the pipeline's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geolab.common.io import read_json
from geolab.reporting.docs import table

PAIRS = "artifacts/match/pairs_stats.json"
METRICS = "results/match/evaluate/metrics.json"
PER_PAIR = "results/match/evaluate/per_pair.json"
SWEEP = "results/match/evaluate/rotation_sweep.json"
SPEED = "benchmarks/results/match_speed.json"
REPLICATION = "benchmarks/results/match_speed_replication.json"
INT8_LAYERS = "benchmarks/results/match_int8_layers.json"
SUBPIXEL = "benchmarks/results/match_subpixel.json"
POOLED = "benchmarks/results/match_speed_pooled.json"
ORDER = ("same_season", "cross_season", "cross_year", "augmented", "eolearn", "all")


def pairs_block(stats: dict[str, Any]) -> str:
    """Pairs per category."""
    rows = [[c, n] for c, n in stats["per_category"].items()]
    return table(["category", "pairs"], rows)


def results_block(metrics: dict[str, Any], per_pair: dict[str, Any]) -> str:
    """AUC, solved %, inliers and time per matcher and category."""
    rows = []
    for name, cats in metrics.items():
        for cat in [c for c in ORDER if c in cats]:
            s = cats[cat]
            rows.append(
                [
                    f"`{name}`",
                    cat,
                    s["auc@1px"],
                    s["auc@3px"],
                    s["auc@5px"],
                    s["auc@10px"],
                    f"{s['solved_pct']:.0f} %",
                    f"{s['inliers']:.0f} / {s['matches']:.0f}",
                    f"{s['inlier_ratio']:.2f}",
                    f"{s['ms']:.0f}",
                ]  # fmt: skip
            )
    header = ["matcher", "pairs", "AUC@1px", "AUC@3px", "AUC@5px", "AUC@10px", "solved",
              "inliers / matches", "inlier ratio", "ms / pair"]  # fmt: skip
    out = table(header, rows)
    skipped = per_pair.get("skipped", {})
    if skipped:
        out += "\nSkipped: " + "; ".join(f"`{k}` ({v})" for k, v in skipped.items()) + "\n"
    return out


def sweep_block(sweep: dict[str, Any]) -> str:
    """Corner error per angle and matcher."""
    data = sweep["sweep"]
    angles = sorted({a for v in data.values() for a in v}, key=float)
    rows = []
    for name, values in data.items():
        cells = []
        for a in angles:
            e = values[a]["corner_error"]
            cells.append("fail" if e == float("inf") or e > 50 else f"{e:.1f}")
        rows.append([f"`{name}`", *cells])
    header = ["matcher", *[f"{float(a):.0f}°" for a in angles]]
    return f"Pair `{sweep['pair']}`, mean corner error in px:\n\n" + table(header, rows)


def speed_block(speed: dict[str, Any]) -> str:
    """Speed against AUC@5px per configuration, with the AUC difference from the plain one."""
    rows = []
    for name, c in speed["configs"].items():
        d = c.get("auc@5px_vs_plain")
        diff = f"{d['diff']:+.3f} [{d['ci90'][0]:+.3f}, {d['ci90'][1]:+.3f}]" if d else ""
        rows.append(
            [
                name,
                f"{c['ms_per_pair']:.0f}",
                f"{c['speedup']:.2f}x",
                c["auc@5px"],
                diff,
                f"{c['solved_pct']:.0f} %",
            ]  # fmt: skip
        )
    seeds = speed.get("seeds") or []
    drawn = ""
    if seeds:
        drawn = f" (those of `match_pairs` and those drawn with seeds {', '.join(map(str, seeds))}"
        drawn += f"; {speed['date_pairs']} distinct date pairs)" if "date_pairs" in speed else ")"
    note = (
        f"\n{len(speed['pairs'])} same- and cross-season pairs{drawn}, {speed['threads']} "
        f"threads, median of {speed['reps']} run(s), torch {speed['torch']}"
    )
    if speed.get("onnxruntime"):
        note += f", ONNX Runtime {speed['onnxruntime']}"
    if speed.get("cpu"):
        note += f", {speed['cpu']}"
    note += "."
    if any("auc@5px_vs_plain" in c for c in speed["configs"].values()):
        note += (
            f" The interval is a 90 % bootstrap interval ({speed.get('bootstrap', 0)} draws) "
            "that resamples date pairs, each with all its homographies."
        )
    note += "\n"
    header = ["DISK + LightGlue", "ms / pair", "speed-up", "AUC@5px", "AUC@5px − plain [90 %]",
              "solved"]  # fmt: skip
    return table(header, rows) + note


def int8_layers_block(layers: dict[str, Any]) -> str:
    """How close int8 DISK stays to float32 with each convolution kept float, then 3 variants."""
    rows = [
        [r["index"], f"`{r['name']}`", f"{r['recall@1px']:.3f}", f"{r['cosine']:.4f}"]
        for r in layers["per_conv"]
    ]
    out = table(
        ["conv", "kept float (and the first)", "keypoint recall@1px", "descriptor cos"], rows
    )
    rows = [
        [name, f"{v['ms_per_image']:.0f}", f"{v['recall@1px']:.3f}", f"{v['cosine']:.4f}"]
        for name, v in layers["variants"].items()
    ]
    out += "\n" + table(
        ["DISK network", "ms / image", "keypoint recall@1px", "descriptor cos"], rows
    )
    return out + (
        f"\n{layers['keypoints']} keypoints on the 12 `{layers['held_out']}` dates at "
        f"{layers['size']} px, int8 calibrated on `{layers['calibration']}`; "
        f"{layers['threads']} threads, median ms for one image, torch {layers['torch']}.\n"
    )


def subpixel_block(result: dict[str, Any]) -> str:
    """Keypoint localisation with and without sub-pixel refinement (same-date warps)."""
    rows = [
        [f"{name}", f"{c['median_error_px']:.3f}", f"{100 * c['share_below_1px']:.0f} %",
         f"{c['matches_per_pair']:.0f}", c["wrong_matches"],
         f"{c['median_corner_error_px']:.3f}", f"{c['ms_per_pair']:.0f}"]
        for name, c in result["configs"].items()
    ]  # fmt: skip
    header = ["DISK + LightGlue", "median match error (px)", "below 1 px", "matches / pair",
              "wrong matches (≥ 4 px)", "median corner error (px)", "ms / pair"]  # fmt: skip
    return table(header, rows) + (
        f"\n{result['pairs']} pairs: each `{result['dates']}` date at {result['size']} px against "
        f"itself warped by a homography drawn with seed {result['seed']}; match errors over the "
        f"matches within 4 px of the truth; {result['threads']} threads, torch "
        f"{result['torch']}.\n"
    )


def blocks(root: Path) -> dict[str, str]:
    """Every generated block of the match doc."""
    return {
        "match-pairs": pairs_block(read_json(root / PAIRS)),
        "match-results": results_block(read_json(root / METRICS), read_json(root / PER_PAIR)),
        "match-sweep": sweep_block(read_json(root / SWEEP)),
        "match-speed": speed_block(read_json(root / SPEED)),
        "match-speed-replication": speed_block(read_json(root / REPLICATION)),
        "match-int8-layers": int8_layers_block(read_json(root / INT8_LAYERS)),
        "match-subpixel": subpixel_block(read_json(root / SUBPIXEL)),
        "match-speed-pooled": speed_block(read_json(root / POOLED)),
    }
