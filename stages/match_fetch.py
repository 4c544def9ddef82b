"""Stage match_fetch: the scenes to match, with a manifest.

``match.source: sample`` (default, offline) copies the embedded Sentinel-2 sample (12 dates of
tile T36UYA, 5 eo-learn scenes); ``match.source: stac`` searches a STAC API and reads only the
area of interest from the cloud-optimised GeoTIFFs (needs the network; see ``match.fetch``).
"""

import logging

from geolab.common.io import write_json
from geolab.common.stage import parser, start
from geolab.match.fetch import fetch
from geolab.match.pipeline import copy_sample


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="data/sentinel2 (the embedded sample)")
    p.add_argument("--out", required=True, help="scenes folder (chips + manifest.json)")
    p.add_argument("--stats", required=True, help="stats .json")
    args = p.parse_args()
    c = start("match", args.params).params
    if c.source == "sample":
        manifest = copy_sample(args.data, args.out)
        stats = {"source": "sample", "scenes": len(manifest["scenes"])}
    else:
        stats = {"source": "stac", **fetch(c.fetch, args.out)}
    logging.getLogger(__name__).info("scenes: %s", stats)
    write_json(args.stats, stats)


if __name__ == "__main__":
    main()
