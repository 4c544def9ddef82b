"""Finding mountains in raw text: entity groups like a Hugging Face pipeline ("simple")."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch

from geolab.common.train import to_device
from geolab.ner.dataset import ENTITY, LABELS, decode_tags, tokenize
from geolab.ner.model import encode, word_probs


class Tagger:
    """Tag raw text with a trained model.

    Args:
        model: the token classifier (eval mode).
        tokenizer: its fast tokenizer.
        max_length: sub-word limit of one window.
        window_words: words per window for long texts.
        window_stride: words between window starts; each word takes its prediction from the
            window in which it is farthest from an edge.
        device: where to run.
        cased_names: in a text that has capital letters, drop a predicted mountain written
            in lower case only ("the range", "glacier"): names are proper nouns (see
            :func:`~geolab.ner.dataset.decode_tags`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        max_length: int = 96,
        window_words: int = 64,
        window_stride: int = 48,
        device: torch.device | str = "cpu",
        cased_names: bool = True,
    ) -> None:
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.window_words, self.window_stride = window_words, window_stride
        self.device = torch.device(device)
        self.cased_names = cased_names

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, device: torch.device | str = "cpu", **overrides: Any
    ) -> Tagger:
        """Load ``models/ner`` (checkpoint + tokenizer).

        Args:
            model_dir: the directory ``ner_train`` wrote.
            device: where to run.
            **overrides: ``max_length``, ``window_words``, ``window_stride``, ``cased_names``;
                by default the values the model was trained with.
        """
        from geolab.ner.evaluate import load_tagger

        model, tokenizer, blob = load_tagger(model_dir, device)
        p = blob["params"].get("ner", {})
        keys = ("max_length", "window_words", "window_stride", "cased_names")
        kwargs = {k: p[k] for k in keys if k in p} | {
            k: v for k, v in overrides.items() if v is not None
        }
        return cls(model, tokenizer, device=device, **kwargs)

    def word_probs(self, words: list[str]) -> torch.Tensor:
        """``(n_words, 3)`` label probabilities, windowed for long inputs.

        Windows hold up to ``window_words`` words and are also cut where the sub-word tokens
        reach ``max_length``; the next window starts early enough to overlap the last one by
        ``window_words - window_stride`` words (or at the first word cut off), so every word is
        scored. A word scored by several windows keeps the prediction of the window in which it
        is farthest from an edge.
        """
        n = len(words)
        out = torch.zeros(n, len(LABELS))
        best = torch.full((n,), -1.0)
        overlap = self.window_words - self.window_stride
        start = 0
        with torch.no_grad():
            while start < n:
                kept, p = self._window(words[start : start + self.window_words])
                pos = torch.arange(kept)
                centrality = torch.minimum(pos, kept - 1 - pos).float()
                if start == 0:
                    centrality += (pos < kept // 2).float() * n  # no left edge at the text start
                if start + kept >= n:
                    centrality += (pos >= kept // 2).float() * n  # nor a right edge at its end
                take = centrality > best[start : start + kept]
                out[start : start + kept][take] = p[:kept][take]
                best[start : start + kept][take] = centrality[take]
                if start + kept >= n:
                    break
                start += max(1, min(self.window_stride, kept - overlap))
        return out

    def _window(self, chunk: list[str]) -> tuple[int, torch.Tensor]:
        """Probabilities of one window and how many leading words fit into ``max_length``."""
        batch = to_device(encode(self.tokenizer, [chunk], None, self.max_length), self.device)
        p = word_probs(self.model, batch, [len(chunk)])[0]
        missing = p.isnan().any(-1).nonzero()
        kept = int(missing[0]) if len(missing) else len(chunk)
        return max(1, kept), torch.nan_to_num(p, nan=0.0)

    def __call__(self, text: str) -> list[dict[str, Any]]:
        """Entity groups in ``text``.

        Returns:
            ``[{"entity_group": "MOUNTAIN", "score": float, "word": str, "start": int,
            "end": int}]`` with character offsets into ``text``; ``[]`` for empty text.
        """
        spans = tokenize(text)
        if not spans:
            return []
        words = [t for t, _, _ in spans]
        probs = self.word_probs(words)
        return _groups(text, spans, self.decode(words, probs), probs.max(-1).values.tolist())

    def decode(self, words: list[str], probs: torch.Tensor) -> list[str]:
        """IOB2 tags from :meth:`word_probs` (see :func:`~geolab.ner.dataset.decode_tags`)."""
        return decode_tags(words, probs, self.cased_names)


def _groups(text: str, spans: list, tags: list[str], scores: list[float]) -> list[dict]:
    groups: list[dict[str, Any]] = []
    current: list[int] = []
    for i, tag in enumerate([*tags, "O"]):
        if current and not tag.startswith("I-"):
            start, end = spans[current[0]][1], spans[current[-1]][2]
            groups.append(
                {
                    "entity_group": ENTITY,
                    "score": round(sum(scores[j] for j in current) / len(current), 4),
                    "word": text[start:end],
                    "start": start,
                    "end": end,
                }
            )
            current = []
        if tag.startswith(("B-", "I-")):
            current.append(i)
    return groups


def highlight_terminal(text: str, groups: list[dict[str, Any]]) -> str:
    """The text with each mountain in bold green (ANSI colours)."""
    out, pos = [], 0
    for g in groups:
        out += [text[pos : g["start"]], "\033[1;32m", text[g["start"] : g["end"]], "\033[0m"]
        pos = g["end"]
    return "".join(out + [text[pos:]])


def highlight_html(texts: list[str], results: list[list[dict[str, Any]]]) -> str:
    """A standalone HTML page with mountains marked (score in the tooltip)."""
    paras = []
    for text, groups in zip(texts, results, strict=True):
        out, pos = [], 0
        for g in groups:
            out.append(html.escape(text[pos : g["start"]]))
            out.append(f'<mark title="MOUNTAIN {g["score"]:.2f}">{html.escape(g["word"])}</mark>')
            pos = g["end"]
        out.append(html.escape(text[pos:]))
        paras.append(f"<p>{''.join(out)}</p>")
    style = "mark{background:#b7e4c7;border-radius:3px;padding:0 2px}body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.6}"  # noqa: E501
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>geolab ner</title>'
        f"<style>{style}</style></head><body>{''.join(paras)}</body></html>\n"
    )
