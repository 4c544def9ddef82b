"""Stage match_pairs: pairs of dates warped by known random homographies (the ground truth)."""

from collections import Counter

from geolab.common.io import write_json
from geolab.common.stage import parser, start
from geolab.match.data import save_pairs
from geolab.match.pipeline import build_pairs, read_manifest


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--scenes", required=True, help="artifacts/match/scenes (with manifest.json)")
    p.add_argument("--out", required=True, help="pairs folder")
    p.add_argument("--stats", required=True, help="stats .json")
    args = p.parse_args()
    ctx = start("match", args.params)
    pairs = build_pairs(read_manifest(args.scenes), ctx.params, ctx.base.seed)
    save_pairs(args.out, pairs)
    write_json(
        args.stats,
        {
            "pairs": len(pairs),
            "per_category": dict(Counter(x["category"] for x in pairs)),
            "valid_share": {x["id"]: round(float(x["valid1"].mean()), 4) for x in pairs},
        },
    )


if __name__ == "__main__":
    main()
