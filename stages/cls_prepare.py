"""Stage cls_prepare: cut the Dubai tiles into labelled land-cover patches."""

from geolab.cls.data import build_patch_dataset
from geolab.common.io import save_splits, write_json
from geolab.common.stage import parser, start


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="data/dubai")
    p.add_argument("--out", required=True, help="patches .npz")
    p.add_argument("--stats", required=True, help="stats .json")
    args = p.parse_args()
    ctx = start("cls", args.params)
    c = ctx.params
    splits = {"train": c.train_tiles, "val": c.val_tiles, "test": c.test_tiles}
    arrays, stats = build_patch_dataset(
        args.data, splits, c.patch_size, c.stride, c.resize, c.purity
    )
    save_splits(args.out, arrays, compress=True)
    write_json(args.stats, stats)


if __name__ == "__main__":
    main()
