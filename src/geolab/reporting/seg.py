"""The generated tables of docs/seg/baseline-performance.md, read from the pipeline's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geolab.common.figures import read_series
from geolab.common.io import read_json
from geolab.common.params import read_yaml
from geolab.reporting.docs import diff_range, table
from geolab.seg.data import CLASSES

STATS = "artifacts/seg/stats.json"
TRAIN = "results/seg/train/metrics.json"
TRAIN_LIVE = "results/seg/train"
EVALUATE = "results/seg/evaluate/per_class.json"
SWEEP = "results/seg/evaluate/scale_sweep.json"
SPEED = "benchmarks/results/seg_speed.json"
SEEDS = "benchmarks/results/seg_seeds.json"
FOLDS = "benchmarks/results/seg_folds.json"
PARAMS = "params.yaml"


def data_block(stats: dict[str, Any]) -> str:
    """Patches and class shares per split."""
    rows = []
    for split, s in stats["splits"].items():
        shares = [f"{100 * s['class_frequency'][c]:.1f} %" for c in CLASSES]
        rows.append([split, ", ".join(map(str, s["tiles"])), s["patches"], *shares])
    out = table(["split", "tiles", "patches", *CLASSES], rows)
    return out + (
        f"\n{stats['ignored_mask_pixels']:,} mask pixels (black `#000000` or unknown colours) "
        "are ignored in training and scoring.\n"
    )


def results_block(
    per_class: dict[str, Any], train: dict[str, Any], seg: dict[str, Any], best_val: float
) -> str:
    """Headline scores, per-class scores and how the model was trained."""
    head = table(
        ["metric (test tiles, whole images)", "value"],
        [
            ["**mIoU over the 5 real classes (gated)**", f"**{per_class['miou_5']:.3f}**"],
            ["mIoU over all 6 classes", per_class["miou_6"]],
            ["pixel accuracy", per_class["pixel_accuracy"]],
            [
                "images / labelled pixels",
                f"{per_class['images']} / {per_class['labelled_pixels']:,}",
            ],
        ],
    )
    rows = []
    for c in CLASSES:
        s = per_class["classes"][c]
        share = s["true_pixels"] / per_class["labelled_pixels"]
        rows.append([c, s["iou"], s["precision"], s["recall"], s["f1"], f"{100 * share:.1f} %"])
    classes = table(["class", "IoU", "precision", "recall", "F1", "share of pixels"], rows)
    infer = " + ".join(f"{x:g}" for x in seg.get("infer_scales") or [seg["scale"]])
    setup = (
        f"Model `{seg['model']}`, loss {' + '.join(seg['loss'])} "
        f"(class weights `{seg['class_weights']}`), tiles scaled by {seg['scale']}, "
        f"{seg['patch_size']} px patches (stride {seg['stride']}), batch {seg['batch_size']}, "
        f"lr {seg['lr']}, {train['epochs_run']} of {seg['epochs']} epochs run, best epoch "
        f"{train['best_epoch'] + 1} (validation mIoU {best_val:.3f} on patches); whole tiles "
        f"predicted at scale {infer}"
        f"{' with flip TTA' if seg.get('tta') else ''}."
    )
    return f"{head}\n{classes}\n{setup}\n"


def speed_block(speed: dict[str, Any]) -> str:
    """Training throughput, inference latency and sizes per model."""
    rows = []
    for name, m in speed["models"].items():
        rows.append(
            [
                f"`{name}`",
                f"{m['parameters'] / 1e6:.2f} M",
                f"{m['checkpoint_bytes'] / 2**20:.1f} MiB",
                f"{m['train_geolab_images_per_s']:.1f}",
                f"{m['train_bare_images_per_s']:.1f}",
                f"{m['train_ratio']:.2f}",
                f"{m['infer_ms_per_512_tile_scale1']:.0f}",
                f"{m['infer_ms_per_512_tile_scale025']:.0f}",
            ]
        )
    header = [
        "model",
        "parameters",
        "checkpoint",
        "train img/s (geolab)",
        "train img/s (bare loop)",
        "ratio",
        "ms / 512² tile (scale 1)",
        "ms / 512² tile (scale 0.25)",
    ]
    note = (
        f"\n{speed['threads']} threads, batches of {speed['batch_size']} patches of "
        f"{speed['patch']}² px, torch {speed['torch']}.\n"
    )
    return table(header, rows) + note


def scales_block(sweep: dict[str, Any]) -> str:
    """Whole-tile validation scores per inference scale (how ``seg.infer_scales`` was chosen)."""
    first = next(iter(sweep["scales"].values()))
    classes = [c for c in first["iou"] if c != "unlabeled"]
    chosen = sorted(round(float(x), 4) for x in sweep["infer_scales"])
    rows = []
    for key, m in sweep["scales"].items():
        mark = "**" if [round(x, 4) for x in m["scales"]] == chosen else ""
        rows.append(
            [f"{mark}{key}{mark}", f"{mark}{m['miou_5']:.3f}{mark}"]
            + [f"{m['iou'][c]:.3f}" for c in classes]
        )
    head = ["inference scale", "val mIoU-5", *[f"{c} IoU" for c in classes]]
    tiles = ", ".join(map(str, sweep["tiles"]))
    return table(head, rows) + (
        f"\nWhole validation tiles ({tiles}); bold: `seg.infer_scales`, as evaluated on the test "
        "tiles.\n"
    )


def _best_val(root: Path) -> float:
    """The best validation mIoU of the training history (the epoch the checkpoint is from)."""
    _, values = read_series(root / TRAIN_LIVE, "val/miou")
    return max(values)


def seeds_block(result: dict[str, Any]) -> str:
    """Whole-tile test and val mIoU-5 per configuration over seeds (``benchmarks/seeds.py``)."""
    rows = []
    for name, c in result["configs"].items():
        test, val = c["test"], c["val"]
        per_seed = ", ".join(f"{v['miou_5']:.3f}" for v in test["per_seed"].values())
        diffs = []
        for split in ("test", "val"):
            diffs.append(diff_range(c.get("vs_baseline", {}).get(split)))
        settings = " ".join(f"`{s}`" for s in c["set"]) or "params.yaml"
        rows.append(
            [name, settings, per_seed, f"{test['miou_5']['mean']:.3f} ± {test['miou_5']['sd']:.3f}",
             diffs[0], f"{val['miou_5']['mean']:.3f}", diffs[1],
             f"{c['train']['best_epoch']['mean']:.1f} / {c['train']['epochs_run']['mean']:.1f}"]
        )  # fmt: skip
    header = ["run", "settings", "test mIoU-5 per seed", "mean ± sd",
              "test vs baseline: mean [min, max]", "val mIoU-5", "val vs baseline",
              "best / run epochs"]  # fmt: skip
    real = CLASSES[:-1]
    per_class = [
        [name, split, *(f"{c[split][f'iou_{k}']['mean']:.3f}" for k in real)]
        for split in ("test", "val")
        for name, c in result["configs"].items()
    ]
    seeds = ", ".join(str(s) for s in result["seeds"])
    return (
        f"Seeds {seeds} (`base.seed`: the decoder's initialisation, the augmentation and the "
        "batch order); whole test and val tiles, predicted at `seg.infer_scales`.\n\n"
        + table(header, rows)
        + "\nPer-class IoU, mean over the seeds:\n\n"
        + table(["run", "tiles", *real], per_class)
    )


def folds_block(result: dict[str, Any]) -> str:
    """Held-out tile mIoU-5 per configuration, leaving one tile out (``seeds.py --folds``)."""
    rows = []
    for name, c in result["configs"].items():
        held, test = c["val"], c["test"]
        per_fold = ", ".join(f"{v['miou_5']:.3f}" for v in held["per_fold"].values())
        d = c.get("vs_baseline", {})
        vs, test_vs = "", ""
        if "val" in d:
            v = d["val"]
            n = len(v["per_fold"])
            vs = f"{diff_range(v)}, {v['wins']} of {n}"
        if "test" in d:
            test_vs = (
                f"{d['test']['mean']:+.3f}, {d['test']['wins']} of {len(d['test']['per_fold'])}"
            )
        settings = " ".join(f"`{s}`" for s in c["set"]) or "params.yaml"
        rows.append(
            [name, settings, per_fold, f"{held['miou_5']['mean']:.3f}", vs,
             f"{test['miou_5']['mean']:.3f}", test_vs]
        )  # fmt: skip
    tiles = ", ".join(str(t) for t in result["folds"])
    header = [
        "run", "settings", f"held-out mIoU-5, tiles {tiles}", "mean",
        "vs baseline: mean [min, max], wins", "test mIoU-5 (mean)", "test vs baseline, wins",
    ]  # fmt: skip
    real = CLASSES[:-1]
    per_class = [
        [name, *(f"{c['val'][f'iou_{k}']['mean']:.3f}" for k in real)]
        for name, c in result["configs"].items()
    ]
    return (
        f"Tiles {tiles}, each in turn the only validation tile (epoch selection and its "
        f"whole-tile score at `seg.infer_scales`), the others training; seed "
        f"{result['seeds'][0]}; test tile as in `params.yaml`.\n\n"
        + table(header, rows)
        + "\nPer-class IoU on the held-out tiles, mean over the folds:\n\n"
        + table(["run", *real], per_class)
    )


def blocks(root: Path) -> dict[str, str]:
    """Every generated block of the seg doc."""
    seg = read_yaml(root / PARAMS)["seg"]
    return {
        "seg-data": data_block(read_json(root / STATS)),
        "seg-results": results_block(
            read_json(root / EVALUATE), read_json(root / TRAIN), seg, _best_val(root)
        ),
        "seg-scales": scales_block(read_json(root / SWEEP)),
        "seg-speed": speed_block(read_json(root / SPEED)),
        "seg-seeds": seeds_block(read_json(root / SEEDS)),
        "seg-folds": folds_block(read_json(root / FOLDS)),
    }
