"""Stage ner_generate: make the training sentences (offline templates, or an LLM with a key)."""

from pathlib import Path

from geolab.common.io import write_json
from geolab.common.stage import parser, start
from geolab.ner.dataset import write_jsonl


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--gazetteer", required=True, type=Path)
    p.add_argument("--negatives", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="dataset .jsonl")
    p.add_argument("--stats", required=True, type=Path)
    p.add_argument("--cache", type=Path, default=Path("artifacts/ner/llm_cache.jsonl"))
    args = p.parse_args()
    ctx = start("ner", args.params)
    c = ctx.params
    if c.source == "llm":
        from geolab.ner.generate import generate_llm_dataset
        from geolab.ner.templates import read_gazetteer

        names = [e.name for e in read_gazetteer(args.gazetteer)]
        sentences, stats = generate_llm_dataset(
            names,
            c.n_sentences,
            model=c.llm_model,
            base_url=c.base_url,
            concurrency=c.concurrency,
            max_requests=c.max_requests,
            max_retries=c.max_retries,
            temperature=c.temperature,
            cache=args.cache,
            seed=ctx.base.seed,
        )
    else:
        from geolab.ner.templates import generate_template_dataset

        sentences, stats = generate_template_dataset(
            args.gazetteer,
            args.negatives,
            c.n_sentences,
            c.negative_frac,
            ctx.base.seed,
            join_frac=c.join_frac,
        )
    write_jsonl(args.out, sentences)
    write_json(args.stats, {"source": c.source, **stats})


if __name__ == "__main__":
    main()
