"""Stage seg_prepare: cut the Dubai tiles into image/mask patches, split by tile."""

from geolab.common.io import save_splits, write_json
from geolab.common.stage import parser, start
from geolab.seg.data import build_patches


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="data/dubai")
    p.add_argument("--out", required=True, help="patches .npz")
    p.add_argument("--stats", required=True, help="stats .json")
    args = p.parse_args()
    c = start("seg", args.params).params
    splits = {"train": c.train_tiles, "val": c.val_tiles, "test": c.test_tiles}
    arrays, stats = build_patches(args.data, splits, c.scale, c.patch_size, c.stride)
    save_splits(args.out, arrays)
    write_json(args.stats, stats)


if __name__ == "__main__":
    main()
