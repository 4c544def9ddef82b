"""Sentences with BIO tags: the label set, a tokenizer, and strict readers and writers.

A dataset is a JSONL file, one sentence a line::

    {"id": "tpl-000001", "tokens": ["Mont", "Blanc", "is", "high", "."],
     "tags": ["B-MOUNTAIN", "I-MOUNTAIN", "O", "O", "O"], "source": "template",
     "mountain": "Mont Blanc"}

``id``, ``tokens`` and ``tags`` are required; ``source`` and ``mountain`` (the gazetteer name the
sentence was made for, or null for a negative) are optional. Two-column CoNLL files (token, tag;
blank line between sentences; tab or space separated) are read too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from geolab.common.io import atomic_open

log = logging.getLogger(__name__)

ENTITY = "MOUNTAIN"
LABELS: tuple[str, ...] = ("O", f"B-{ENTITY}", f"I-{ENTITY}")
LABEL2ID = {label: i for i, label in enumerate(LABELS)}

# words (letters and digits, inner hyphens kept: "Jungfrau-Aletsch"), the clitics 's and n't
# split off as in CoNLL / Few-NERD ("George 's", "is n't"), any other non-space character alone
_TOKEN = re.compile(r"n't\b|'s\b|\w+(?=n't\b)|\w+(?:-\w+)*|[^\w\s]", re.UNICODE)


class DatasetError(ValueError):
    """A dataset file is malformed; the message names the file and line."""


@dataclasses.dataclass
class Sentence:
    """One tagged sentence."""

    id: str
    tokens: list[str]
    tags: list[str]
    source: str = ""
    mountain: str | None = None

    def text(self) -> str:
        """The tokens joined by spaces (the form the tagger sees)."""
        return " ".join(self.tokens)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split text into CoNLL-style tokens with character offsets.

    Returns:
        ``(token, start, end)`` triples; ``text[start:end] == token``.
    """
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def check_sentence(tokens: list[str], tags: list[str], where: str) -> None:
    """Validate one sentence (see :func:`repair_iob2` for I- tags that follow O).

    Raises:
        DatasetError: empty, length mismatch, unknown tag, or a token with whitespace.
    """
    if not tokens:
        raise DatasetError(f"{where}: empty sentence")
    if len(tokens) != len(tags):
        raise DatasetError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    for i, tag in enumerate(tags):
        if tag not in LABEL2ID:
            raise DatasetError(f"{where}: unknown tag '{tag}' (valid: {', '.join(LABELS)})")
        if not tokens[i] or any(c.isspace() for c in tokens[i]):
            raise DatasetError(f"{where}: token {i} {tokens[i]!r} is empty or has whitespace")


def repair_iob2(tags: list[str]) -> tuple[list[str], int]:
    """Turn an ``I-`` tag that starts an entity (after ``O`` or first) into ``B-``.

    Returns:
        The repaired tags and how many were changed. Human annotations (Few-NERD) contain a few.
    """
    out, fixed = list(tags), 0
    for i, tag in enumerate(out):
        if tag.startswith("I-") and (i == 0 or out[i - 1] == "O"):
            out[i] = "B-" + tag[2:]
            fixed += 1
    return out, fixed


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text (byte {err.start})") from None


def read_conll(path: str | Path) -> list[Sentence]:
    """Read a two-column CoNLL file (token, tag).

    Raises:
        DatasetError: a line without exactly two columns, an unknown tag, or no sentence at all;
            the message names the file and line.
    """
    path = Path(path)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 1
    for lineno, line in enumerate(_read_text(path).splitlines() + [""], start=1):
        if not line.strip():
            if tokens:
                check_sentence(tokens, tags, f"{path}:{start}")
                tags, fixed = repair_iob2(tags)
                if fixed:
                    log.warning("%s:%d: %d I- tag(s) after O read as B-", path, start, fixed)
                sentences.append(Sentence(f"{path.stem}-{len(sentences)}", tokens, tags, "conll"))
            tokens, tags, start = [], [], lineno + 1
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) != 2:
            raise DatasetError(f"{path}:{lineno}: expected 2 columns (token, tag), got {len(cols)}")
        tokens.append(cols[0])
        tags.append(cols[1].strip())
    if not sentences:
        raise DatasetError(f"{path}: no sentences")
    return sentences


def read_jsonl(path: str | Path) -> list[Sentence]:
    """Read a JSONL dataset, validating every line.

    Raises:
        DatasetError: invalid JSON, missing or extra fields, bad tags, duplicate ids, or an empty
            file; the message names the file and line.
    """
    path = Path(path)
    fields = {f.name for f in dataclasses.fields(Sentence)}
    sentences, seen = [], set()
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{where}: not valid JSON: {err.msg}") from None
        if not isinstance(row, dict) or not {"id", "tokens", "tags"} <= row.keys():
            raise DatasetError(f"{where}: expected an object with id, tokens and tags")
        if row.keys() - fields:
            raise DatasetError(f"{where}: unknown field(s) {sorted(row.keys() - fields)}")
        if not all(
            isinstance(row[k], list) and all(isinstance(x, str) for x in row[k])
            for k in ("tokens", "tags")
        ):
            raise DatasetError(f"{where}: tokens and tags must be lists of strings")
        if not isinstance(row["id"], str):
            raise DatasetError(f"{where}: id must be a string")
        check_sentence(row["tokens"], row["tags"], where)
        row["tags"], fixed = repair_iob2(row["tags"])
        if fixed:
            log.warning("%s: %d I- tag(s) after O read as B-", where, fixed)
        if row["id"] in seen:
            raise DatasetError(f"{where}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        sentences.append(Sentence(**row))
    if not sentences:
        raise DatasetError(f"{path}: no sentences")
    return sentences


def read_dataset(path: str | Path) -> list[Sentence]:
    """Read ``.jsonl`` or CoNLL (any other suffix)."""
    return read_jsonl(path) if str(path).endswith(".jsonl") else read_conll(path)


def write_jsonl(path: str | Path, sentences: Iterable[Sentence]) -> int:
    """Write sentences as JSONL atomically; returns how many were written."""
    n = 0
    with atomic_open(path) as fh:
        for s in sentences:
            fh.write(json.dumps(dataclasses.asdict(s), ensure_ascii=False) + "\n")
            n += 1
    return n


def entities(tags: list[str]) -> list[tuple[int, int]]:
    """Entity spans ``[start, end)`` in token indices from IOB2 tags."""
    spans, start = [], None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not tag.startswith("I-"):
            spans.append((start, i))
            start = None
        if tag.startswith("B-"):
            start = i
    return spans


def decode_tags(words: list[str], probs: Any, cased_names: bool = False) -> list[str]:
    """IOB2 tags from ``(n_words, 3)`` label probabilities: argmax, IOB2-repaired.

    With ``cased_names``, in a text that has a capital letter somewhere, a predicted entity
    with no capital letter, no digit and no letter of a script without case is dropped
    ("the range", a lone quote mark): names are proper nouns. Lower-case-only text is left as
    predicted.

    Always: tokens without a letter or digit at either edge of an entity (quote marks, brackets,
    commas) are not part of it: "Brocken ``" becomes "Brocken"; inner ones ("Aoraki / Mount
    Cook") stay.
    """
    tags = repair_iob2([LABELS[int(i)] for i in probs.argmax(-1)])[0]
    for a, b in entities(tags):
        keep = [i for i in range(a, b) if any(c.isalnum() for c in words[i])]
        tags[a:b] = ["O"] * (b - a)
        if keep:
            first, last = keep[0], keep[-1]
            tags[first : last + 1] = [f"B-{ENTITY}"] + [f"I-{ENTITY}"] * (last - first)
    if cased_names and any(c.isupper() for w in words for c in w):
        for a, b in entities(tags):
            if not any(_name_char(c) for w in words[a:b] for c in w):
                tags[a:b] = ["O"] * (b - a)
    return tags


def _name_char(c: str) -> bool:
    """A capital letter, a digit, or a letter of a script without case (CJK, Arabic...)."""
    return c.isupper() or c.isdigit() or (c.isalpha() and not c.islower())


def tag_span(tokens: list[str], name_tokens: list[str]) -> list[str]:
    """Tags for ``tokens`` marking every occurrence of the token sequence ``name_tokens``."""
    tags = ["O"] * len(tokens)
    n = len(name_tokens)
    i = 0
    while n and i <= len(tokens) - n:
        if tokens[i : i + n] == name_tokens:
            tags[i : i + n] = [f"B-{ENTITY}"] + [f"I-{ENTITY}"] * (n - 1)
            i += n
        else:
            i += 1
    return tags
