"""Stage ner_evaluate: score the generated test split and real Few-NERD sentences."""

from pathlib import Path

from geolab.common.io import write_json
from geolab.common.live import log_metrics, open_live
from geolab.common.stage import parser, start
from geolab.ner.dataset import read_conll, read_jsonl
from geolab.ner.evaluate import score_set, worst_errors
from geolab.ner.predict import Tagger
from geolab.ner.train import split_dataset


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, type=Path, help="generated dataset .jsonl")
    p.add_argument("--real", required=True, nargs="+", type=Path, help="CoNLL files")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--live", required=True, type=Path, help="dvclive directory")
    args = p.parse_args()
    ctx = start("ner", args.params)
    c = ctx.params
    tagger = Tagger.from_dir(
        args.model,
        ctx.device,
        max_length=c.max_length,
        window_words=c.window_words,
        window_stride=c.window_stride,
        cased_names=c.cased_names,
    )
    sets = {
        "generated": split_dataset(read_jsonl(args.data), c.val_frac, c.test_frac, ctx.base.seed)[
            "test"
        ],
        "fewnerd": [s for path in args.real for s in read_conll(path)],
    }
    errors = {}
    with open_live(args.live) as live:
        for name, sentences in sets.items():
            out = score_set(tagger, sentences)
            log_metrics(live, out["metrics"], prefix=name, plot=False)
            y_true = [t for s in sentences for t in s.tags]
            y_pred = [t for tags in out["pred"] for t in tags]
            live.log_sklearn_plot("confusion_matrix", y_true, y_pred, name=f"confusion_{name}.json")
            errors[name] = worst_errors(sentences, out["pred"], out["nll"], c.worst_errors)
    write_json(args.live / "worst_errors.json", errors)


if __name__ == "__main__":
    main()
