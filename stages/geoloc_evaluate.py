"""Stage geoloc_evaluate: km errors on validation and test against two baselines; figures.

Headline metrics (``test/...``) are those of the predictor chosen on validation in training:
mean and median km, % of places within 1 / 25 / 200 km, cell accuracy and the ratio of the
mean to the predict-the-training-mean baseline. Every predictor (cell head with centroid,
clipped or weighted points; x/y head; their blend) and both baselines are in ``metrics.json``;
also ``predictions.csv``, a map with error lines, an error histogram and the training curves.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from geolab.common.figures import training_curves
from geolab.common.stage import parser, start
from geolab.geoloc.evaluate import run_evaluation


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", required=True, help="the geoloc_fetch dataset folder")
    p.add_argument("--grid", required=True, help="the geoloc_grid output folder")
    p.add_argument("--model", required=True, help="models/geoloc/model.pt")
    p.add_argument("--boundary", required=True, help="Croatia's GeoJSON")
    p.add_argument("--train-live", required=True, help="geoloc_train's dvclive directory")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args()
    ctx = start("geoloc", args.params)
    run_evaluation(
        args.dataset, args.grid, args.model, args.boundary, args.out, ctx.device,
        batch_size=2 * ctx.params.batch_size,
    )  # fmt: skip
    fig = training_curves(
        args.train_live,
        [["train/loss", "train/ce"], ["val/mean_km", "val/km/regression"]],
        "geoloc training",
        minimize=("km",),
    )
    fig.savefig(Path(args.out) / "training_curves.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
