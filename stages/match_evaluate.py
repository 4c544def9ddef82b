"""Stage match_evaluate: every matcher on every ground-truth pair, the rotation sweep, figures.

Metrics (``results/match/evaluate/metrics.json``): ``<matcher>/<category>/auc@{1,3,5,10}px``
(corner-error AUC, HPatches protocol), ``solved_pct``, ``inlier_ratio``, ``matches``,
``inliers``, ``ms`` (mean per pair) and ``median_corner_error``, for each pair category and
``all``. ``per_pair.json`` has every pair's numbers; ``rotation_sweep.json`` the sweep.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from geolab.common.io import write_json
from geolab.common.live import log_metrics, open_live
from geolab.common.stage import parser, start
from geolab.match import figures
from geolab.match.data import load_pairs
from geolab.match.evaluate import summary_table
from geolab.match.pipeline import (
    make_matchers,
    robust_params,
    rotation_sweep,
    run_benchmark,
    sweep_choice,
)

PAIR_KEYS = (
    "status",
    "matches",
    "inliers",
    "inlier_ratio",
    "corner_error",
    "corner_error_max",
    "ms",
)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--pairs", required=True, help="artifacts/match/pairs")
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start("match", args.params)
    c = ctx.params
    pairs = load_pairs(args.pairs)
    robust = robust_params(c)
    matchers, skipped = make_matchers(c.matchers, c, str(ctx.device))
    scored = run_benchmark(pairs, matchers, robust)
    cats = {x["id"]: x["category"] for x in pairs}
    table = summary_table(scored, cats, c.solved_px)
    sweep_pair = sweep_choice(pairs, scored, c.rotation_category)
    rot_matchers, _ = make_matchers(
        c.rotation_matchers, c, str(ctx.device), max_keypoints=c.rotation_max_keypoints
    )
    sweep = rotation_sweep(sweep_pair, rot_matchers, c.rotation_angles, robust, c.rotation_search)
    live_dir = Path(args.live)
    with open_live(live_dir) as live:
        log_metrics(live, table, plot=False)
        shown = _figure_pairs(pairs, c.figure_pairs)
        for name, fig in _figures(scored, pairs, shown, sweep).items():
            live.log_image(name, fig)
            plt.close(fig)
    per_pair = {
        name: [
            {"id": r["id"], "category": cats[r["id"]], **{k: r[k] for k in PAIR_KEYS}} for r in rows
        ]
        for name, rows in scored.items()
    }
    write_json(live_dir / "per_pair.json", {"pairs": per_pair, "skipped": skipped})
    write_json(live_dir / "rotation_sweep.json", {"pair": sweep_pair["id"], "sweep": sweep})


def _figure_pairs(pairs: list, n: int) -> list:
    """One pair per category first, then the rest in order, ``n`` in all."""
    firsts = {}
    for x in pairs:
        firsts.setdefault(x["category"], x)
    rest = [x for x in pairs if x not in firsts.values()]
    return (list(firsts.values()) + rest)[:n]


def _figures(scored: dict, pairs: list, shown: list, sweep: dict) -> dict:
    index = {x["id"]: i for i, x in enumerate(pairs)}
    out = {}
    for name, rows in scored.items():
        panels = [
            (x, rows[index[x["id"]]], f"{name} | {x['category']}: {x['date0']} → {x['date1']}")
            for x in shown
        ]
        out[f"matches_{name}.png"] = figures.match_grid(panels)
    out["corner_error_curves.png"] = figures.error_curves(
        {name: [r["corner_error"] for r in rows] for name, rows in scored.items()}
    )
    corner = {n: {a: v["corner_error"] for a, v in s.items()} for n, s in sweep.items()}
    inliers = {n: {a: v["inliers"] for a, v in s.items()} for n, s in sweep.items()}
    out["rotation_sweep_inliers.png"] = figures.rotation_sweep(inliers, "inliers")
    capped = {n: {a: min(e, 50.0) for a, e in v.items()} for n, v in corner.items()}
    out["rotation_sweep_corner_error.png"] = figures.rotation_sweep(
        capped, "corner error (px, capped at 50)"
    )
    return out


if __name__ == "__main__":
    main()
