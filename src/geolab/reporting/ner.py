"""The generated tables of docs/ner.md, read from the pipeline's files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from geolab.common.io import read_json
from geolab.reporting.docs import diff_range, table

STATS = "artifacts/ner/stats.json"
TRAIN = "results/ner/train/metrics.json"
VAL_F1 = "results/ner/train/plots/metrics/val/f1.tsv"
METRICS = "results/ner/evaluate/metrics.json"
SEEDS = "benchmarks/results"  # ner_seeds.json -> block ner-seeds, ner_seeds_x.json -> ner-seeds-x
SETS = {
    "generated": "generated test split (unseen mountains)",
    "fewnerd": "Few-NERD (mountains + negatives)",
}


def data_block(stats: dict[str, Any]) -> str:
    """What the generator wrote."""
    groups = stats.get("per_template_group", {})
    no_mountain = {g: groups.get(g, 0) for g in ("negative", "general", "domain")}
    rows = [
        ["source", stats["source"]],
        ["sentences", f"{stats['sentences']:,}"],
        ["with a mountain / without", f"{stats['positives']:,} / {stats['negatives']:,}"],
        [
            "without: lookalike / general-topic / domain templates",
            " / ".join(f"{n:,}" for n in no_mountain.values()),
        ],
        ["entities", f"{stats['entities']:,}"],
        ["distinct mountains", stats["distinct_mountains"]],
        ["templates used", stats.get("templates_used", "?")],
        ["tokens", f"{stats['tokens']:,}"],
    ]
    return table(["", "value"], rows)


def results_block(metrics: dict[str, Any], train: dict[str, Any], val_f1: list[float]) -> str:
    """Entity-level scores per set, then the training curve in words."""
    rows = []
    for key, name in SETS.items():
        m = metrics[key]
        e = m["entity"]
        rows.append(
            [name, int(m["sentences"]), int(m["entities"]), f"{e['precision']:.3f}",
             f"{e['recall']:.3f}", f"**{e['f1']:.3f}**", f"{m['token_accuracy']:.3f}",
             f"{m['perplexity']:.3f}"]
        )  # fmt: skip
    header = ["set", "sentences", "entities", "entity P", "entity R", "entity F1", "token acc.",
              "perplexity"]  # fmt: skip
    token = metrics["fewnerd"]["token"]
    counts = metrics["fewnerd"].get("entity_counts")
    found = ""
    if counts:
        n = {k: int(v) for k, v in counts.items()}
        found = (
            f"On Few-NERD the model finds {n['correct']} mentions exactly, misses {n['missed']},\n"
            f"and marks {n['false_positive']} spans that are not mentions, "
            f"{n['false_positive_no_entity']} of them in sentences without any mountain.\n\n"
        )
    return (
        table(header, rows)
        + "\n"
        + found
        + (
            f"Validation entity F1 per epoch: {', '.join(f'{f:.3f}' for f in val_f1)} (best: epoch "
            f"{train.get('best_epoch', '?')} of {train.get('epochs_run', '?')}, the checkpoint "
            f"kept).\n\nToken-level F1 on Few-NERD: "
            + ", ".join(f"`{c}` {token[c]['f1']:.3f}" for c in token)
            + ".\n"
        )
    )


def seeds_block(result: dict[str, Any]) -> str:
    """Few-NERD entity scores per configuration over seeds (``benchmarks/seeds.py --study ner``)."""
    rows = []
    for name, c in result["configs"].items():
        f = c["fewnerd"]
        per_seed = ", ".join(f"{v['f1']:.3f}" for v in f["per_seed"].values())
        diff = diff_range(c.get("vs_baseline", {}).get("fewnerd"))
        settings = " ".join(f"`{s}`" for s in c["set"]) or "params.yaml"
        rows.append(
            [name, settings, per_seed, f"{f['f1']['mean']:.3f} ± {f['f1']['sd']:.3f}",
             f"{f['precision']['mean']:.3f}", f"{f['recall']['mean']:.3f}", diff,
             f"{c['generated']['f1']['mean']:.3f}"]
        )  # fmt: skip
    header = ["run", "settings", "Few-NERD F1 per seed", "mean ± sd", "P", "R",
              "F1 vs baseline: mean [min, max]", "generated test F1"]  # fmt: skip
    seeds = ", ".join(str(s) for s in result["seeds"])
    return (
        f"Seeds {seeds} (`base.seed`: the generated sentences, the split and the training).\n\n"
        + table(header, rows)
    )


def _column(path: Path, name: str) -> list[float]:
    with path.open(encoding="utf-8") as f:
        return [float(row[name]) for row in csv.DictReader(f, delimiter="\t")]


def blocks(root: Path) -> dict[str, str]:
    """Every generated block of the ner doc."""
    return {
        "ner-data": data_block(read_json(root / STATS)),
        "ner-results": results_block(
            read_json(root / METRICS), read_json(root / TRAIN), _column(root / VAL_F1, "f1")
        ),
    } | seeds_blocks(root)


def seeds_blocks(root: Path) -> dict[str, str]:
    """A block per seed-benchmark result: ``ner_seeds[_NAME].json`` -> ``ner-seeds[-NAME]``.

    Every result file needs its block in the doc (``geolab docs`` names a missing one), so a
    new ``benchmarks/seeds.py --out`` file is documented before it lands.
    """
    files = sorted((root / SEEDS).glob("ner_seeds*.json"))
    return {f.stem.replace("_", "-"): seeds_block(read_json(f)) for f in files}
