"""Stage geoloc_fetch: the 4-view photo dataset in the competition layout.

``geoloc.source: sample`` (default, offline) renders synthetic photos of places sampled inside
the real Croatia boundary (see ``geolab.geoloc.render``: numbers on it measure the pipeline,
not real-world skill); ``geoloc.source: streetview`` downloads real Street View photos (needs
``GOOGLE_MAPS_API_KEY`` in the environment and the network).
"""

from pathlib import Path

from geolab.common.io import write_json
from geolab.common.stage import parser, start
from geolab.geoloc.fetch import fetch_streetview
from geolab.geoloc.render import write_sample


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="data/croatia")
    p.add_argument("--out", required=True, help="dataset folder (data.csv + images/)")
    p.add_argument("--stats", required=True, help="stats .json")
    args = p.parse_args()
    ctx = start("geoloc", args.params)
    c, data = ctx.params, Path(args.data)
    boundary = data / "ne_10m_admin0_HRV.geojson"
    if c.source == "sample":
        stats = write_sample(args.out, c.sample.count, ctx.base.seed, c.sample.size, boundary,
                             data / "neighbours_10m")  # fmt: skip
    else:
        stats = fetch_streetview(c.fetch, boundary, args.out)
    write_json(args.stats, {"source": c.source, **stats})


if __name__ == "__main__":
    main()
