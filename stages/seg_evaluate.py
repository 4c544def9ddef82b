"""Stage seg_evaluate: score the segmentation model on whole test tiles; figures on val tiles.

Every labelled pixel of the test tiles counts, at the original resolution (sliding-window
inference over each whole image, at the checkpoint's ``infer_scales``, probabilities averaged
when there are several). Logged as ``test/...``: ``miou_5`` (mean IoU over the 5 real
classes building, land, road, vegetation, water: the gated metric), ``miou_6`` (with
``unlabeled``), ``pixel_accuracy`` and per-class ``iou``, ``precision``, ``recall``, ``f1``.
Also a confusion matrix (a seeded subsample of at most 200k labelled pixels), per-class
precision/recall bars, the training curves, 10 validation images with their true and predicted
masks, and ``per_class.json`` (per-class scores, pixel counts and the full confusion matrix).
With ``--sweep-factors``, ``scale_sweep.json``/``.png``: whole val tiles scored at single
inference scales (the training scale times each factor) and at ``seg.infer_scales``, the
evidence for ``seg.infer_scales`` (chosen on val, never on test).
"""

from pathlib import Path

import matplotlib.pyplot as plt

from geolab.common.figures import training_curves
from geolab.common.io import write_json
from geolab.common.live import log_metrics, open_live
from geolab.common.stage import parser, start
from geolab.common.train import load_checkpoint
from geolab.datasets import dubai
from geolab.seg.evaluate import (
    confusion_sample,
    evaluate_tiles,
    examples_figure,
    per_class_bars,
    per_class_table,
    pick_examples,
    scale_sweep,
    scale_sweep_figure,
    select_tiles,
    sweep_scales,
)
from geolab.seg.infer import check_scales, infer_scales, predict_tile
from geolab.seg.models import MODELS

CONFUSION_PIXELS = 200_000
EXAMPLES = 10


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="data/dubai")
    p.add_argument("--model", required=True, help="models/seg/model.pt")
    p.add_argument("--live", required=True, help="dvclive directory")
    p.add_argument("--train-live", required=True, help="seg_train's dvclive directory")
    p.add_argument("--window", type=int, default=512, help="window side (model pixels)")
    p.add_argument("--overlap", type=int, default=128, help="overlap of windows (model pixels)")
    p.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument(
        "--confusion-pixels",
        type=int,
        default=CONFUSION_PIXELS,
        help="labelled pixels sampled for the confusion-matrix plot",
    )
    p.add_argument(
        "--sweep-factors",
        type=float,
        nargs="+",
        help="also score the val tiles predicted at the training scale times each factor "
        "(capped at 1), and at seg.infer_scales: scale_sweep.json and .png, the evidence "
        "for seg.infer_scales",
    )
    args = p.parse_args()
    ctx = start("seg", args.params)
    c = ctx.params
    model, blob = load_checkpoint(args.model, MODELS.build, ctx.device)
    extra = blob["extra"]
    chosen = infer_scales(extra)
    sweep_sets: list[list[float]] = []
    if args.sweep_factors:
        try:
            singles = check_scales(sweep_scales(float(extra["scale"]), args.sweep_factors))
        except ValueError as err:
            p.error(str(err))
        sweep_sets = [[x] for x in singles] + [chosen]
    classes = list(extra.get("classes", dubai.CLASSES))
    samples = dubai.list_samples(args.data)
    infer = {
        "window": args.window,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "tta": c.tta,
    }
    out = evaluate_tiles(
        model, extra, select_tiles(samples, c.test_tiles), **infer, device=ctx.device
    )
    val_tiles = select_tiles(samples, c.val_tiles)
    sweep = scale_sweep(model, extra, val_tiles, sweep_sets, **infer, device=ctx.device)
    val = pick_examples(val_tiles, EXAMPLES)
    val_preds = [
        predict_tile(model, dubai.read_image(s.image), extra, **infer, device=ctx.device)
        for s in val
    ]
    with open_live(args.live) as live:
        log_metrics(live, out["metrics"], prefix="test", plot=False)
        y_true, y_pred = confusion_sample(out["confusion"], args.confusion_pixels, ctx.base.seed)
        names = [classes[i] for i in y_true], [classes[i] for i in y_pred]
        live.log_sklearn_plot("confusion_matrix", *names, name="confusion_matrix.json")
        for name, fig in (
            (
                "val_examples.png",
                examples_figure(
                    val, val_preds, EXAMPLES, title="validation: image / true / predicted"
                ),
            ),
            ("per_class_precision_recall.png", per_class_bars(out["scores"])),
            (
                "training_curves.png",
                training_curves(
                    args.train_live,
                    [["train/loss", "val/loss"], ["val/miou", "val/pixel_accuracy"]],
                    title="seg training (validation on patches of the val tiles)",
                ),
            ),
        ):
            live.log_image(name, fig)
            plt.close(fig)
        write_json(Path(args.live) / "per_class.json", per_class_table(out))
        if sweep:
            write_json(
                Path(args.live) / "scale_sweep.json",
                {"tiles": c.val_tiles, "infer_scales": chosen, "scales": sweep},
            )
            title = f"val tiles {c.val_tiles}: whole-tile IoU by inference scale"
            fig = scale_sweep_figure(sweep, chosen, title)
            live.log_image("scale_sweep.png", fig)
            plt.close(fig)


if __name__ == "__main__":
    main()
