"""Stage cls_evaluate: score the classifier on the test tiles; confusion matrix and examples."""

import matplotlib.pyplot as plt

from geolab.cls.data import CLASSES
from geolab.cls.evaluate import evaluate, examples_figure, summary_metrics
from geolab.common.live import log_metrics, open_live
from geolab.common.stage import parser, start


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start("cls", args.params)
    out = evaluate(args.model, args.patches, ctx.device)
    with open_live(args.live) as live:
        log_metrics(live, summary_metrics(out["scores"]), prefix="test", plot=False)
        names = [CLASSES[i] for i in out["y_true"]], [CLASSES[i] for i in out["y_pred"]]
        live.log_sklearn_plot("confusion_matrix", *names, name="confusion_matrix.json")
        fig = examples_figure(out["x"], out["y_true"], out["y_pred"])
        live.log_image("examples.png", fig)
        plt.close(fig)


if __name__ == "__main__":
    main()
