"""Stage geoloc_train: train the 4-view geolocation network; dvclive logs loss and val km."""

from geolab.common.stage import parser, start, train_with_live
from geolab.geoloc.train import train


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", required=True, help="the geoloc_fetch dataset folder")
    p.add_argument("--grid", required=True, help="the geoloc_grid output folder")
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--live", required=True, help="dvclive directory")
    args = p.parse_args()
    ctx = start("geoloc", args.params)
    train_with_live(
        args.live,
        lambda live: train(
            ctx.params,
            args.dataset,
            args.grid,
            args.model,
            ctx.device,
            live=live,
            seed=ctx.base.seed,
            resolved=ctx.resolved,
        ),
    )


if __name__ == "__main__":
    main()
