r"""Training sentences written by an LLM (OpenAI chat completions, structured output).

This is the *real* data path: it needs ``OPENAI_API_KEY`` and is never part of the default
pipeline (``ner.source: template`` is). One request asks for one English sentence about one
gazetteer mountain and gets back JSON ``{"sentence", "tokens", "tags"}``; every reply is checked
before it becomes a :class:`~geolab.ner.dataset.Sentence`.

Resumable: every reply (or the final error of a request) is appended to a JSONL cache the moment
it arrives, one line each::

    {"id": 7, "mountain": "Mont Blanc", "angle": "its history", "model": "gpt-4o-mini",
     "retries": 1, "content": "{\"sentence\": ...}"}
    {"id": 8, "mountain": "Eiger", "angle": "...", "model": "...", "retries": 5,
     "error": "RateLimitError: Error code: 429 ..."}

A rerun reads the cache, requests only the ids without a reply (failed ones are asked again) and
rebuilds the whole dataset from the cached replies, so changes to the checks apply to them too.
The cache is keyed by request id and mountain; to regenerate with another model or prompt, use
another cache file.

Counting:
    * ``requests_sent``: logical requests of this run, i.e. calls of
      ``chat.completions.create``. The SDK's own retries of a call (429, 5xx, 408/409, timeouts,
      connection errors, with exponential back-off or the server's ``retry-after-ms``) are not
      counted again; they are counted in ``retries`` (read from ``x-stainless-retry-count``).
    * the budget ``max_requests`` limits ``requests_sent``; the HTTP attempts of one run are at
      most ``max_requests * (1 + max_retries)``. Cached replies cost nothing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import openai
from tqdm.auto import tqdm

from geolab.ner.dataset import ENTITY, LABELS, Sentence, entities, repair_iob2, tokenize

log = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"

SYSTEM_PROMPT = f"""\
You write training data for a named-entity tagger that finds mountain names in English text.
Answer with JSON {{"sentence": string, "tokens": [string], "tags": [string]}}.
Rules:
- "sentence": ONE natural, fluent English sentence (8 to 30 words) that mentions the given \
mountain, spelled exactly as given. Vary the sentence structure.
- "tokens": the sentence split into CoNLL-style tokens, in order. Every punctuation mark is its \
own token; the possessive 's and the clitic n't are separate tokens ("Everest's" -> "Everest", \
"'s"; "isn't" -> "is", "n't"); a hyphenated word stays one token; no token contains a space.
- "tags": exactly one tag per token, BIO scheme with one entity type: B-{ENTITY} on the first \
token of a mountain name, I-{ENTITY} on each further token of that name, O on every other token.
- Words such as "Mount", "Mont", "Monte", "Piz" or "Pic" are part of the name when they are \
part of it ("Mount Everest" -> B-{ENTITY} I-{ENTITY}). A leading "the" is NOT part of the name \
("the Matterhorn" -> O B-{ENTITY}).
- Tag EVERY mountain mentioned in the sentence, not only the given one. Mountain ranges, \
valleys, glaciers, passes, huts, lakes and towns are O.
- Only the tags B-{ENTITY}, I-{ENTITY} and O exist."""

USER_PROMPT = (
    "Write one sentence that mentions the mountain {name}.\n"
    "Let it be about {angle}.\n"
    "Return the sentence, its tokens and their tags as JSON."
)

# what a sentence is about, drawn per request, so that the same mountain asked twice gives
# different sentences
ANGLES: tuple[str, ...] = (
    "its history",
    "a climb or an expedition",
    "the view from it or of it",
    "its geology or shape",
    "the weather or the seasons on it",
    "visiting it as a tourist",
    "its wildlife or plants",
    "its name or a legend",
    "a comparison with another mountain",
    "a person connected with it",
    "a photograph or painting of it",
    "how to get there",
)

RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "tagged_sentence",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "sentence": {"type": "string"},
                "tokens": {"type": "array", "items": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string", "enum": list(LABELS)}},
            },
            "required": ["sentence", "tokens", "tags"],
            "additionalProperties": False,
        },
    },
}

# errors that will not go away by asking again: stop issuing requests and raise
_FATAL_ERRORS = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
)

_COUNTERS = (
    "requests_sent",
    "retries",
    "failed_requests",
    "cached_replies",
    "stale_cache",
    "truncated_cache_lines",
    "corrupt_cache_lines",
    "unparsable",
    "length_mismatch",
    "bad_tokens",
    "fixed_tags",
    "repaired_iob2",
    "mountain_not_tagged",
    "duplicates",
    "kept",
    "missing",
)


class LLMConfigError(RuntimeError):
    """The LLM path cannot run: no API key, or the API refused the key, model or URL."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One planned request: its id (index), the mountain it names and the angle it asks for."""

    id: int
    mountain: str
    angle: str


@dataclasses.dataclass
class _Run:
    """What the request loop needs, shared by all requests of a run."""

    client: Any
    model: str
    temperature: float
    secret: str | None
    stats: collections.Counter
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    fatal: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------- planning


def plan_jobs(mountains: Iterable[str], n: int, seed: int) -> list[Job]:
    """The requests of a run, request ``i`` naming ``plan[i].mountain``.

    Mountains are drawn without repetition in a seeded shuffle; when every name has been used,
    a fresh shuffle starts the next cycle. The plan for ``n`` is a prefix of the plan for any
    larger ``n`` (same names and seed), so raising ``n_sentences`` keeps the cache valid.

    Args:
        mountains: gazetteer names; blanks and repeats are dropped.
        n: number of requests.
        seed: seed of the shuffles and of the angles.

    Raises:
        ValueError: no mountain name.
    """
    names = list(dict.fromkeys(m.strip() for m in mountains if m and m.strip()))
    if not names:
        raise ValueError("no mountain names to write sentences about")
    rng, angle_rng = random.Random(seed), random.Random(f"{seed}-angles")
    order: list[str] = []
    while len(order) < n:
        cycle = list(names)
        rng.shuffle(cycle)
        order.extend(cycle)
    return [Job(i, order[i], angle_rng.choice(ANGLES)) for i in range(n)]


def build_messages(job: Job) -> list[dict[str, str]]:
    """The chat messages of one request: the tag rules, then the mountain and the angle."""
    user = USER_PROMPT.format(name=json.dumps(job.mountain, ensure_ascii=False), angle=job.angle)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# ------------------------------------------------------------------------------------ cache


def read_cache(path: Path, stats: collections.Counter) -> list[dict[str, Any]]:
    """Read the cache's records, dropping a last line cut short by a crash.

    A truncated last line (no newline, or not valid JSON) is removed from the file so that the
    next appended record starts on its own line; it is counted in ``truncated_cache_lines``.
    Other unreadable lines are skipped and counted in ``corrupt_cache_lines``.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records = []
    for lineno, raw in enumerate(lines, start=1):
        rec = _parse_cache_line(raw)
        if rec is None and raw.strip():
            if lineno == len(lines) and not tail:
                log.warning("%s: last line is cut short (crash?); dropping it", path)
                stats["truncated_cache_lines"] += 1
                _truncate(path, len(data) - len(raw) - 1)
            else:
                log.warning("%s:%d: unreadable cache line skipped", path, lineno)
                stats["corrupt_cache_lines"] += 1
        elif rec is not None:
            records.append(rec)
    if tail.strip():
        log.warning("%s: last line has no newline (crash?); dropping it", path)
        stats["truncated_cache_lines"] += 1
        _truncate(path, len(data) - len(tail))
    return records


def _parse_cache_line(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ok = isinstance(rec, dict) and isinstance(rec.get("id"), int) and "mountain" in rec
    return rec if ok else None


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


def cached_replies(
    records: list[dict[str, Any]], jobs: list[Job], stats: collections.Counter
) -> dict[int, dict[str, Any]]:
    """The first reply (a record with ``content``) for each planned job, by job id.

    A reply recorded for another mountain under the same id (the gazetteer or seed changed) is
    not used; the job is asked again (counted in ``stale_cache``). Error records are ignored.
    """
    replies: dict[int, dict[str, Any]] = {}
    stale: set[int] = set()
    for rec in records:
        i = rec["id"]
        if "content" not in rec or not 0 <= i < len(jobs) or i in replies:
            continue
        if rec["mountain"] != jobs[i].mountain:
            stale.add(i)
            continue
        replies[i] = rec
    stats["stale_cache"] += len(stale - replies.keys())
    return replies


def _append(fh: IO[str], record: dict[str, Any]) -> None:
    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    fh.flush()


# --------------------------------------------------------------------------------- requests


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "<redacted>") if secret else text


def _retry_count(err: openai.APIError) -> int:
    """Retries the SDK made before it gave up (the header of the last attempt)."""
    request = getattr(err, "request", None)
    try:
        return int(request.headers.get("x-stainless-retry-count", 0)) if request else 0
    except (TypeError, ValueError):
        return 0


async def _request(job: Job, run: _Run) -> dict[str, Any]:
    """Send one request (the SDK retries transient failures) and return its cache record."""
    record: dict[str, Any] = {
        "id": job.id,
        "mountain": job.mountain,
        "angle": job.angle,
        "model": run.model,
    }
    try:
        raw = await run.client.chat.completions.with_raw_response.create(
            model=run.model,
            messages=build_messages(job),
            response_format=RESPONSE_FORMAT,
            temperature=run.temperature,
        )
        completion = raw.parse()
    except openai.APIError as err:
        record["retries"] = _retry_count(err)
        record["error"] = _redact(f"{type(err).__name__}: {err}", run.secret)
        if isinstance(err, _FATAL_ERRORS):
            run.fatal.append(record["error"])
        return record
    except ValueError as err:  # HTTP 200 whose body is not a chat completion (JSON, pydantic)
        record["retries"] = raw.retries_taken
        record["error"] = _redact(f"bad response body: {type(err).__name__}: {err}", run.secret)
        return record
    record["retries"] = raw.retries_taken
    record.update(_message(completion))
    return record


def _message(completion: Any) -> dict[str, Any]:
    """The reply's ``content`` (None if there is none) and ``refusal`` if the model refused."""
    choices = getattr(completion, "choices", None) or [None]
    message = getattr(choices[0], "message", None)
    out = {"content": getattr(message, "content", None)}
    if getattr(message, "refusal", None):
        out["refusal"] = message.refusal
    return out


async def _request_all(jobs: list[Job], run: _Run, cache: Path, concurrency: int) -> None:
    """Send ``jobs`` with at most ``concurrency`` in flight.

    Each record is appended to the cache (and flushed) the moment it arrives, and kept in
    ``run.records``. After a fatal error (401, 403, 404) no further request is started.
    """
    sem = asyncio.Semaphore(concurrency)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (
        cache.open("a", encoding="utf-8") as fh,
        tqdm(total=len(jobs), desc="llm requests", unit="req", disable=None) as bar,
    ):

        async def one(job: Job) -> None:
            async with sem:
                if run.fatal:
                    return
                run.stats["requests_sent"] += 1
                record = await _request(job, run)
            _append(fh, record)
            run.records.append(record)
            _count(record, run)
            bar.update(1)
            bar.set_postfix(failed=run.stats["failed_requests"], retries=run.stats["retries"])

        await asyncio.gather(*(one(job) for job in jobs))


def _count(record: dict[str, Any], run: _Run) -> None:
    run.stats["retries"] += record["retries"]
    if "error" in record:
        run.stats["failed_requests"] += 1
        log.warning("request %d (%s) failed: %s", record["id"], record["mountain"], record["error"])


# ------------------------------------------------------------------------------- validation


def parse_reply(content: Any) -> tuple[list[str], list[str]] | None:
    """``(tokens, tags)`` from a reply's JSON, or None if it is not JSON with the three fields."""
    if not isinstance(content, str):
        return None
    try:
        obj = json.loads(content)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("sentence"), str):
        return None
    tokens, tags = obj.get("tokens"), obj.get("tags")
    if not isinstance(tokens, list) or not isinstance(tags, list):
        return None
    if not all(isinstance(x, str) for x in [*tokens, *tags]):
        return None
    return tokens, tags


def fix_tags(tags: list[str]) -> tuple[list[str], int, int]:
    """Unknown tags become ``O``, then an ``I-`` that starts an entity becomes ``B-``.

    Returns:
        The tags, how many unknown tags were replaced, and how many ``I-`` were repaired.
    """
    known = [t if t in LABELS else "O" for t in tags]
    fixed = sum(a != b for a, b in zip(tags, known, strict=True))
    repaired, n_iob = repair_iob2(known)
    return repaired, fixed, n_iob


def mountain_tagged(tokens: list[str], tags: list[str], mountain: str) -> bool:
    """Whether the named mountain occurs in ``tokens`` and every occurrence is one entity.

    The name is split with :func:`~geolab.ner.dataset.tokenize` and matched case-insensitively;
    each occurrence must be exactly an entity span (B- on its first token, I- on the rest, and
    no I- right after it).
    """
    name = [t.casefold() for t, _, _ in tokenize(mountain)]
    low = [t.casefold() for t in tokens]
    n = len(name)
    starts = [i for i in range(len(low) - n + 1) if n and low[i : i + n] == name]
    spans = set(entities(tags))
    return bool(starts) and all((i, i + n) in spans for i in starts)


def validate_reply(record: dict[str, Any], stats: collections.Counter) -> Sentence | None:
    """The sentence of a cached reply, or None (the reason counted in ``stats``)."""
    parsed = parse_reply(record.get("content"))
    if parsed is None:
        stats["unparsable"] += 1
        return None
    tokens, tags = parsed
    if len(tokens) != len(tags):
        stats["length_mismatch"] += 1
        return None
    if not tokens or any(not t or any(c.isspace() for c in t) for t in tokens):
        stats["bad_tokens"] += 1
        return None
    tags, fixed, n_iob = fix_tags(tags)
    stats["fixed_tags"] += fixed
    stats["repaired_iob2"] += n_iob
    if not mountain_tagged(tokens, tags, record["mountain"]):
        stats["mountain_not_tagged"] += 1
        return None
    return Sentence(f"llm-{record['id'] + 1:06d}", tokens, tags, "llm", record["mountain"])


def build_dataset(replies: dict[int, dict[str, Any]], stats: collections.Counter) -> list[Sentence]:
    """Validate the replies in id order and drop repeated sentences (case-insensitive tokens)."""
    out, seen = [], set()
    for i in sorted(replies):
        sentence = validate_reply(replies[i], stats)
        if sentence is None:
            continue
        key = tuple(t.casefold() for t in sentence.tokens)
        if key in seen:
            stats["duplicates"] += 1
            continue
        seen.add(key)
        out.append(sentence)
    return out


# ------------------------------------------------------------------------------------- main


def _api_key() -> str:
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise LLMConfigError(f"{KEY_ENV} is not set; export it or use ner.source: template")
    return key


def _check_args(n_sentences: int, concurrency: int, max_requests: int, max_retries: int) -> None:
    if n_sentences < 0 or max_requests < 0 or max_retries < 0:
        raise ValueError("n_sentences, max_requests and max_retries must be >= 0")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")


async def generate_llm(
    mountains: list[str],
    n_sentences: int,
    *,
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    concurrency: int = 8,
    max_requests: int = 1000,
    max_retries: int = 5,
    temperature: float = 0.9,
    cache: Path,
    seed: int = 0,
    timeout_s: float = 60.0,
    client: openai.AsyncOpenAI | None = None,
) -> tuple[list[Sentence], dict[str, Any]]:
    """Ask an LLM for tagged sentences about gazetteer mountains, one sentence a request.

    Args:
        mountains: gazetteer names; each request names one, without repetition until all have
            been used (seeded shuffle, see :func:`plan_jobs`).
        n_sentences: requests in all (one sentence each); after the checks, fewer may be kept.
        model: chat model.
        base_url: an OpenAI-compatible endpoint (``.../v1``); None for the OpenAI API.
        concurrency: requests in flight at once.
        max_requests: requests this run may send (cached replies are free; the SDK's retries of
            a request do not count again).
        max_retries: retries per request by the SDK on 408/409/429/5xx, timeouts and connection
            errors, with back-off (honouring ``retry-after-ms`` / ``retry-after``).
        temperature: sampling temperature.
        cache: the JSONL file of raw replies (created; appended to; read on a rerun). One run
            at a time per cache file.
        seed: seed of the mountain order and the angles.
        timeout_s: timeout of one HTTP attempt in seconds.
        client: an ``openai.AsyncOpenAI``-like client to use instead of building one (then
            ``base_url``, ``max_retries`` and ``timeout_s`` are the client's and the key is not
            read). The caller closes it.

    Returns:
        The kept sentences (ids ``llm-<request id + 1>``, 6 digits, stable across reruns;
        ``source="llm"``, ``mountain`` the name asked for) in request order, and the stats:
        the counters ``requests_sent``, ``retries``, ``failed_requests``, ``cached_replies``,
        ``stale_cache``, ``truncated_cache_lines``, ``corrupt_cache_lines``, ``unparsable``,
        ``length_mismatch``, ``bad_tokens``, ``fixed_tags``, ``repaired_iob2``,
        ``mountain_not_tagged``, ``duplicates``, ``kept``, ``missing`` (requests still without a
        reply), plus ``requested``, ``model`` and ``per_mountain`` (kept sentences per name).

    Raises:
        LLMConfigError: requests are needed but ``OPENAI_API_KEY`` is not set (raised before
            any request), or the API answered 401/403/404 (no new request is started after
            the first; the records so far stay in the cache).
        ValueError: bad arguments or no mountain names.
    """
    _check_args(n_sentences, concurrency, max_requests, max_retries)
    stats: collections.Counter = collections.Counter(dict.fromkeys(_COUNTERS, 0))
    jobs = plan_jobs(mountains, n_sentences, seed)
    cache = Path(cache)
    replies = cached_replies(read_cache(cache, stats), jobs, stats)
    stats["cached_replies"] = len(replies)
    todo = [job for job in jobs if job.id not in replies][:max_requests]
    if todo:
        own = client is None
        secret = _api_key() if own else os.environ.get(KEY_ENV, "").strip() or None
        if own:
            client = openai.AsyncOpenAI(
                api_key=secret, base_url=base_url, max_retries=max_retries, timeout=timeout_s
            )
        log.info("llm: %d requests to %s (model %s)", len(todo), base_url or "OpenAI", model)
        run = _Run(client, model, temperature, secret, stats)
        try:
            await _request_all(todo, run, cache, concurrency)
        finally:
            if own:
                await client.close()
        replies.update((r["id"], r) for r in run.records if "content" in r)
        if run.fatal:
            raise LLMConfigError(f"the API refused the request, stopped: {run.fatal[0]}")
    sentences = build_dataset(replies, stats)
    stats["kept"] = len(sentences)
    stats["missing"] = n_sentences - len(replies)
    out: dict[str, Any] = {"requested": n_sentences, "model": model, **stats}
    out["per_mountain"] = dict(sorted(collections.Counter(s.mountain for s in sentences).items()))
    _log_summary(out)
    return sentences, out


def _log_summary(stats: dict[str, Any]) -> None:
    log.info(
        "llm: %d requests sent (%d retries, %d failed), %d cached; kept %d of %d "
        "(unparsable %d, length mismatch %d, bad tokens %d, mountain not tagged %d, "
        "duplicates %d; %d tags fixed); %d still missing",
        stats["requests_sent"],
        stats["retries"],
        stats["failed_requests"],
        stats["cached_replies"],
        stats["kept"],
        stats["requested"],
        stats["unparsable"],
        stats["length_mismatch"],
        stats["bad_tokens"],
        stats["mountain_not_tagged"],
        stats["duplicates"],
        stats["fixed_tags"] + stats["repaired_iob2"],
        stats["missing"],
    )


def generate_llm_dataset(
    mountains: list[str],
    n_sentences: int,
    *,
    model: str = "gpt-4o-mini",
    base_url: str | None = None,
    concurrency: int = 8,
    max_requests: int = 1000,
    max_retries: int = 5,
    temperature: float = 0.9,
    cache: Path,
    seed: int = 0,
    timeout_s: float = 60.0,
    client: openai.AsyncOpenAI | None = None,
) -> tuple[list[Sentence], dict[str, Any]]:
    """:func:`generate_llm` run to completion in a new event loop (not from a running loop)."""
    return asyncio.run(
        generate_llm(
            mountains,
            n_sentences,
            model=model,
            base_url=base_url,
            concurrency=concurrency,
            max_requests=max_requests,
            max_retries=max_retries,
            temperature=temperature,
            cache=cache,
            seed=seed,
            timeout_s=timeout_s,
            client=client,
        )
    )
