"""Stage ner_train: fine-tune the token classifier; dvclive logs loss and F1 per epoch."""

from pathlib import Path

from geolab.common.stage import parser, start, train_with_live
from geolab.ner.dataset import read_jsonl
from geolab.ner.train import train


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, type=Path, help="dataset .jsonl")
    p.add_argument("--model", required=True, type=Path, help="model directory to write")
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start("ner", args.params)
    sentences = read_jsonl(args.data)
    train_with_live(
        args.live,
        lambda live: train(
            ctx.params,
            sentences,
            args.model,
            ctx.device,
            live=live,
            seed=ctx.base.seed,
            resolved=ctx.resolved,
        ),
    )


if __name__ == "__main__":
    main()
