"""Scoring the tagger: entity- and token-level metrics, perplexity, worst errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geolab.common.metrics import confusion_matrix, scores_from_confusion
from geolab.common.train import load_checkpoint
from geolab.ner.dataset import LABEL2ID, LABELS, Sentence, entities
from geolab.ner.model import MODELS, load_tokenizer
from geolab.ner.predict import Tagger
from geolab.ner.train import entity_scores


def load_tagger(model_dir: str | Path, device: torch.device | str = "cpu") -> tuple:
    """The model, its tokenizer and the checkpoint dict from ``models/ner``."""
    model_dir = Path(model_dir)
    model, blob = load_checkpoint(model_dir / "model.pt", MODELS.build, device)
    return model, load_tokenizer(model_dir / "tokenizer"), blob


def score_set(tagger: Tagger, sentences: list[Sentence]) -> dict[str, Any]:
    """Predict one set the way ``geolab ner predict`` does (windows, no truncation) and score it.

    Returns:
        ``metrics`` (entity precision/recall/f1, token-level per-class scores, perplexity, counts,
        ``entity_counts``: correct, false positives (also those in sentences without any true
        entity) and missed entities),
        ``cm`` (3x3 token confusion), ``pred`` (tags) and ``nll`` per sentence.

    Raises:
        ValueError: the set is empty.
    """
    if not sentences:
        raise ValueError("nothing to score: the set is empty")
    probs = [tagger.word_probs(s.tokens) for s in sentences]
    pred = [tagger.decode(s.tokens, p) for s, p in zip(sentences, probs, strict=True)]
    true = [s.tags for s in sentences]
    y_true = np.array([LABEL2ID[t] for tags in true for t in tags])
    y_pred = np.array([LABEL2ID[t] for tags in pred for t in tags])
    cm = confusion_matrix(y_true, y_pred, len(LABELS))
    nll = [_sentence_nll(p, s.tags) for p, s in zip(probs, sentences, strict=True)]
    token = scores_from_confusion(cm, LABELS)
    metrics = {
        "entity": entity_scores(true, pred),
        "token": {
            c: {k: token["per_class"][c][k] for k in ("precision", "recall", "f1")} for c in LABELS
        },
        "token_accuracy": token["accuracy"],
        "perplexity": math.exp(sum(nll) / len(y_true)),
        "sentences": len(sentences),
        "entities": sum(len(entities(t)) for t in true),
        "entity_counts": entity_counts(true, pred),
    }
    return {"metrics": metrics, "cm": cm, "pred": pred, "nll": nll}


def entity_counts(true: list[list[str]], pred: list[list[str]]) -> dict[str, int]:
    """Exact-span entity counts: correct, false positives, missed.

    ``false_positive_no_entity`` counts the false positives in sentences without any true entity
    (Few-NERD's negative sentences), where every hit is a false alarm.
    """
    out = dict.fromkeys(("correct", "false_positive", "false_positive_no_entity", "missed"), 0)
    for t, p in zip(true, pred, strict=True):
        gold, guess = set(entities(t)), set(entities(p))
        out["correct"] += len(gold & guess)
        out["false_positive"] += len(guess - gold)
        out["false_positive_no_entity"] += 0 if gold else len(guess)
        out["missed"] += len(gold - guess)
    return out


def _sentence_nll(probs: torch.Tensor, tags: list[str]) -> float:
    """Sum of -log p(true tag) over the words of a sentence."""
    idx = torch.tensor([LABEL2ID[t] for t in tags])
    p = probs[torch.arange(len(tags)), idx].clamp_min(1e-12)
    return float(-p.log().sum())


def worst_errors(
    sentences: list[Sentence], pred: list[list[str]], nll: list[float], k: int
) -> list[dict[str, Any]]:
    """The ``k`` wrongly tagged sentences with the highest loss, with both entity lists."""
    rows = []
    for s, p, loss in zip(sentences, pred, nll, strict=True):
        if p == s.tags:
            continue
        rows.append(
            {
                "id": s.id,
                "text": s.text(),
                "true": [" ".join(s.tokens[a:b]) for a, b in entities(s.tags)],
                "predicted": [" ".join(s.tokens[a:b]) for a, b in entities(p)],
                "nll": round(loss, 3),
            }
        )
    return sorted(rows, key=lambda r: -r["nll"])[:k]
