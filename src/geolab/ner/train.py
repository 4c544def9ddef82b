"""Fine-tuning the token classifier on generated sentences with the common loop."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from geolab.common.params import to_dict
from geolab.common.train import CheckpointSpec, FitResult, TrainConfig, fit, to_device
from geolab.ner.config import NerParams
from geolab.ner.dataset import LABELS, Sentence, decode_tags
from geolab.ner.model import (
    IGNORE,
    config_dict,
    encode,
    load_pretrained,
    model_inputs,
    word_probs,
)


def split_dataset(
    sentences: list[Sentence], val_frac: float, test_frac: float, seed: int
) -> dict[str, list[Sentence]]:
    """Split reproducibly, keeping all sentences about one mountain in the same split.

    Sentences are grouped by ``mountain`` (sentences without one are their own group); the
    groups are shuffled with ``seed`` and dealt to test, then validation, until each holds its
    share of sentences; the rest is train. The same sentences, fractions and seed give the same
    split, whatever their order.
    """
    groups: dict[str, list[Sentence]] = {}
    for s in sorted(sentences, key=lambda s: s.id):
        groups.setdefault(s.mountain or f"id:{s.id}", []).append(s)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    targets = {"test": round(len(sentences) * test_frac), "val": round(len(sentences) * val_frac)}
    out: dict[str, list[Sentence]] = {"test": [], "val": [], "train": []}
    for key in keys:
        part = next((k for k, n in targets.items() if len(out[k]) < n), "train")
        out[part] += groups[key]
    return out


def make_collate(tokenizer: Any, max_length: int, with_tags: bool = True) -> Callable:
    """Collate sentences into an encoded batch (dynamic padding)."""

    def collate(batch: list[Sentence]) -> dict[str, torch.Tensor]:
        words = [s.tokens for s in batch]
        return encode(tokenizer, words, [s.tags for s in batch] if with_tags else None, max_length)

    return collate


def make_step(label_smoothing: float) -> Callable:
    """Step: cross-entropy over labelled sub-tokens (first sub-token of each word)."""
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=label_smoothing)

    def step(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = model(**model_inputs(model, batch)).logits
        return {"loss": loss_fn(logits.flatten(0, 1), batch["labels"].flatten())}

    return step


def predict_tags(
    model: nn.Module,
    loader: DataLoader,
    sentences: list[Sentence],
    device: torch.device,
    cased_names: bool = False,
) -> tuple[list[list[str]], list[torch.Tensor]]:
    """Word-level BIO tags (``decode_tags``) and probabilities, in loader order."""
    model.eval()
    tags, probs, i = [], [], 0
    with torch.no_grad():
        for batch in loader:
            n_words = [len(s.tokens) for s in sentences[i : i + len(batch["input_ids"])]]
            i += len(n_words)
            for s, p in zip(
                sentences[i - len(n_words) : i],
                word_probs(model, to_device(batch, device), n_words),
                strict=True,
            ):
                tags.append(decode_tags(s.tokens, torch.nan_to_num(p, nan=0.0), cased_names))
                probs.append(p)
    return tags, probs


def entity_scores(true: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Seqeval entity-level precision, recall and F1 (strict IOB2)."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    return {
        "precision": float(precision_score(true, pred, **kw)),
        "recall": float(recall_score(true, pred, **kw)),
        "f1": float(f1_score(true, pred, **kw)),
    }


def make_evaluate(
    loader: DataLoader, sentences: list[Sentence], device: torch.device, cased_names: bool = False
) -> Callable:
    """Validation: sub-token loss and entity-level F1 (tags decoded as predict does)."""
    step = make_step(0.0)

    def evaluate(model: nn.Module) -> dict[str, float]:
        losses = [float(step(model, to_device(b, device))["loss"]) for b in loader]
        pred, _ = predict_tags(model, loader, sentences, device, cased_names)
        scores = entity_scores([s.tags for s in sentences], pred)
        return {"loss": sum(losses) / len(losses), **scores}

    return evaluate


def train(
    params: NerParams,
    sentences: list[Sentence],
    model_dir: str | Path,
    device: torch.device,
    live: Any = None,
    seed: int = 0,
    resolved: dict | None = None,
) -> FitResult:
    """Fine-tune ``params.model`` on the train split; write ``model.pt`` + ``tokenizer/``.

    The checkpoint is self-describing (config, label map, params); the tokenizer is saved beside
    it so that evaluate and predict need neither the network nor the original model name.
    """
    splits = split_dataset(sentences, params.val_frac, params.test_frac, seed)
    model, tokenizer = load_pretrained(params.model, params.case_features)
    model_dir = Path(model_dir)
    tokenizer.save_pretrained(str(model_dir / "tokenizer"))
    collate = make_collate(tokenizer, params.max_length)
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        splits["train"],
        batch_size=params.batch_size,
        shuffle=True,
        generator=gen,
        collate_fn=collate,
    )
    val_loader = DataLoader(splits["val"], batch_size=64, collate_fn=collate)
    ckpt = CheckpointSpec(
        path=model_dir / "model.pt",
        model_name="hf_token_classifier",
        model_kwargs={"config": config_dict(model), "case_features": params.case_features},
        params=resolved or {"ner": to_dict(params)},
        extra={
            "labels": list(LABELS),
            "base_model": params.model,
            "split_sizes": {k: len(v) for k, v in splits.items()},
        },
        resume_path=model_dir.parent / f"{model_dir.name}.last.pt",
    )
    return fit(
        model,
        train_loader,
        TrainConfig.from_params(params),
        make_step(params.label_smoothing),
        ckpt,
        evaluate=make_evaluate(val_loader, splits["val"], device, params.cased_names),
        live=live,
        device=device,
    )
