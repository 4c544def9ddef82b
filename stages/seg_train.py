"""Stage seg_train: train the segmentation model; dvclive logs loss and val mIoU per epoch."""

from geolab.common.stage import parser, start, train_with_live
from geolab.seg.train import train


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start("seg", args.params)
    train_with_live(
        args.live,
        lambda live: train(
            ctx.params,
            args.patches,
            args.model,
            ctx.device,
            live=live,
            seed=ctx.base.seed,
            resolved=ctx.resolved,
        ),
    )


if __name__ == "__main__":
    main()
