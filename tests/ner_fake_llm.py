"""A fake OpenAI chat-completions server for the tests of ``geolab.ner.generate``.

``FakeLLM`` runs an aiohttp app on 127.0.0.1 (ephemeral port) in a background thread with its own
event loop, so a test can call ``asyncio.run`` on the client side as often as it likes. It
answers ``POST /v1/chat/completions`` in the OpenAI response shape; the reply names the mountain
read from the user prompt and is a correct tagged sentence unless a fault is scheduled:

* content faults, fixed per mountain (``content_faults``: name -> kind, see ``CONTENT_FAULTS``),
  applied to every 200 reply for that mountain;
* transient faults (``429`` with ``retry-after-ms``, ``500``, ``slow``), drawn per
  (mountain, attempt) from a seeded RNG with probability ``transient_rate`` for attempts below
  ``transient_attempts``, so the schedule is the same whatever order requests arrive in. The
  attempt is the client's ``x-stainless-retry-count`` header.

Everything that happened is counted: ``requests`` (HTTP attempts), ``retry_headers`` (the
``x-stainless-retry-count`` of each attempt), ``transient`` and ``injected`` (faults actually
sent), ``mountains`` (the mountain of each attempt), ``max_in_flight``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import threading
import time
from typing import Any

from aiohttp import web

from geolab.ner.dataset import tag_span, tokenize

TEMPLATES = (
    "{m} is one of the most climbed peaks in the region.",
    "Many hikers visit {m} every summer to enjoy the view.",
    "In 1865, a team reached the summit of {m} for the first time.",
    "The north face of {m} is famous among alpinists.",
    "{m}'s glaciers have shrunk a lot in the last fifty years.",
    "From the village, you can see the snowy top of {m} on a clear day.",
)

CONTENT_FAULTS = (
    "invalid_json",  # not JSON -> unparsable
    "missing_field",  # no "tags" -> unparsable
    "wrong_tag",  # the final "." tagged B-PEAK -> fixed to O, kept
    "iob",  # the name starts with I-MOUNTAIN -> repaired, kept
    "length_mismatch",  # one tag short -> dropped
    "not_tagged",  # all O -> mountain_not_tagged
    "whitespace_token",  # two tokens glued with a space -> bad_tokens
    "duplicate",  # always the first template -> duplicates when asked twice
    "bad_body",  # HTTP 200 whose body is not JSON -> a failed request
)

_NAME = re.compile(r'mentions the mountain "(.*)"\.?$', re.MULTILINE)


def sentence_for(mountain: str, variant: int) -> tuple[str, list[str], list[str]]:
    """A correct sentence about ``mountain``: text, tokens and BIO tags."""
    text = TEMPLATES[variant % len(TEMPLATES)].format(m=mountain)
    tokens = [t for t, _, _ in tokenize(text)]
    tags = tag_span(tokens, [t for t, _, _ in tokenize(mountain)])
    return text, tokens, tags


def seeded_content_faults(
    mountains: list[str], kinds: tuple[str, ...], per_kind: int, seed: int
) -> dict[str, str]:
    """``per_kind`` distinct mountains for each fault kind, drawn with a seeded RNG."""
    names = list(mountains)
    random.Random(seed).shuffle(names)
    if len(names) < per_kind * len(kinds):
        raise ValueError("not enough mountains for the faults")
    return {names[i]: kinds[i // per_kind] for i in range(per_kind * len(kinds))}


class FakeLLM:
    """The fake server; use as a context manager, then ``base_url``."""

    def __init__(
        self,
        *,
        content_faults: dict[str, str] | None = None,
        transient_rate: float = 0.0,
        transient_kinds: tuple[str, ...] = ("429", "500"),
        transient_attempts: int = 2,
        seed: int = 0,
        slow_s: float = 1.0,
        delay_s: float = 0.0,
        expected_key: str | None = None,
    ) -> None:
        self.content_faults = dict(content_faults or {})
        unknown = set(self.content_faults.values()) - set(CONTENT_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}")
        self.transient_rate = transient_rate
        self.transient_kinds = transient_kinds
        self.transient_attempts = transient_attempts
        self.seed = seed
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.expected_key = expected_key
        self.requests = 0
        self.retry_headers: list[int] = []
        self.mountains: list[str] = []
        self.transient: collections.Counter = collections.Counter()
        self.injected: collections.Counter = collections.Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._replies: collections.Counter = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeLLM:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop and self._thread and self._runner
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self._runner.addresses[0][1]

    @property
    def base_url(self) -> str:
        """The ``base_url`` for the OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def first_attempts(self) -> int:
        """Logical requests: attempts with ``x-stainless-retry-count: 0``."""
        return self.retry_headers.count(0)

    @property
    def retries(self) -> int:
        """Attempts that were retries."""
        return sum(1 for r in self.retry_headers if r > 0)

    # ---------------------------------------------------------------- handler

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        attempt = int(request.headers.get("x-stainless-retry-count", "0"))
        self.retry_headers.append(attempt)
        auth = request.headers.get("Authorization", "")
        if self.expected_key is not None and auth != f"Bearer {self.expected_key}":
            # like the real API, echo (part of) the key: the client must not store or log it
            msg = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
            return _error(401, msg, "invalid_api_key")
        body = await request.json()
        self.bodies.append(body)
        if not _well_formed(body):
            return _error(400, "bad request body", "invalid_request_error")
        match = _NAME.search(body["messages"][-1]["content"])
        if not match:
            return _error(400, "no mountain in the prompt", "invalid_request_error")
        mountain = json.loads(f'"{match.group(1)}"')
        self.mountains.append(mountain)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        kind = self._transient(mountain, attempt)
        if kind:
            self.transient[kind] += 1
            if kind == "429":
                return _error(
                    429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "20"}
                )
            if kind == "500":
                return _error(500, "The server had an error", "server_error")
            await asyncio.sleep(self.slow_s)  # "slow": the client times out first
        return self._reply(body["model"], mountain)

    def _transient(self, mountain: str, attempt: int) -> str | None:
        if attempt >= self.transient_attempts or not self.transient_rate:
            return None
        rng = random.Random(f"{self.seed}|{mountain}|{attempt}")
        if rng.random() >= self.transient_rate:
            return None
        return rng.choice(self.transient_kinds)

    def _reply(self, model: str, mountain: str) -> web.Response:
        fault = self.content_faults.get(mountain)
        seen = self._replies[mountain]
        self._replies[mountain] += 1
        if fault == "bad_body":
            self.injected[fault] += 1
            return web.Response(text="<html>oops</html>", content_type="application/json")
        if fault == "duplicate" and seen:
            self.injected[fault] += 1
        text, tokens, tags = sentence_for(mountain, 0 if fault == "duplicate" else seen)
        content = self._content(fault, text, tokens, tags)
        return web.json_response(_completion(model, content))

    def _content(self, fault: str | None, text: str, tokens: list[str], tags: list[str]) -> str:
        if fault in (None, "duplicate"):
            return json.dumps({"sentence": text, "tokens": tokens, "tags": tags})
        self.injected[fault] += 1
        if fault == "invalid_json":
            return '{"sentence": "' + text[:10]
        if fault == "missing_field":
            return json.dumps({"sentence": text, "tokens": tokens})
        tags = list(tags)
        if fault == "wrong_tag":
            tags[-1] = "B-PEAK"
        elif fault == "iob":
            tags[tags.index("B-MOUNTAIN")] = "I-MOUNTAIN"
        elif fault == "length_mismatch":
            tags = tags[:-1]
        elif fault == "not_tagged":
            tags = ["O"] * len(tokens)
        elif fault == "whitespace_token":
            tokens = [*tokens[:-2], f"{tokens[-2]} {tokens[-1]}"]
            tags = tags[:-1]
        return json.dumps({"sentence": text, "tokens": tokens, "tags": tags})


def _well_formed(body: Any) -> bool:
    try:
        fmt = body["response_format"]
        return (
            isinstance(body["model"], str)
            and body["messages"][0]["role"] == "system"
            and fmt["type"] == "json_schema"
            and "schema" in fmt["json_schema"]
        )
    except (KeyError, IndexError, TypeError):
        return False


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{random.getrandbits(32):08x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
    }


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)
