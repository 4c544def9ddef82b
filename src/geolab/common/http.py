"""Async HTTP helpers shared by the fetchers: a session, retries with back-off, bounded gather.

:func:`request_with_retry` retries a request on HTTP 429, any 5xx, connection errors and
timeouts, waiting ``backoff * 2**attempt`` seconds (with jitter, capped at ``max_delay``) or
the server's ``Retry-After`` if that is longer. Any other status is returned to the caller.

Secrets never leave this module in clear: the value of every query parameter named in
:data:`SECRET_PARAMS` (``key``, ``signature``, ...) is replaced by ``REDACTED`` in every URL
that is logged or put into an error message, and removed from the text of wrapped exceptions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")

SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "signature", "token", "access_token"})
REDACTED = "REDACTED"
USER_AGENT = "geolab-fetch/0.1 (+aiohttp)"

# errors worth another attempt: the connection broke or timed out, the body was cut short
_TRANSIENT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class HTTPError(RuntimeError):
    """A request failed for good; the message names the method and the (redacted) URL.

    Attributes:
        url: the URL with secret query values redacted.
        status: the HTTP status of the last attempt, or None if there was no response.
    """

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclasses.dataclass(frozen=True)
class Response:
    """A finished response whose body has been read.

    Attributes:
        status: HTTP status.
        headers: response headers.
        body: the raw body.
        url: the request URL (with its query) with secret values redacted.
        method: the request method.
        attempts: how many attempts it took (1 = no retry).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    method: str = "GET"
    attempts: int = 1
    secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)

    def json(self) -> Any:
        """The body parsed as JSON; a :class:`HTTPError` naming the URL if it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HTTPError(
                f"{self.method} {self.url}: HTTP {self.status}: body is not JSON ({err})",
                self.url,
                self.status,
            ) from None

    def raise_for_status(self) -> Response:
        """Return self if the status is 2xx, else raise :class:`HTTPError` (URL, status, body)."""
        if 200 <= self.status < 300:
            return self
        text = self.body[:300].decode("utf-8", "replace").strip()
        raise HTTPError(
            f"{self.method} {self.url}: HTTP {self.status}: {scrub(text, self.secrets)}",
            self.url,
            self.status,
        )


def redact_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """``url`` with ``params`` appended as its query, and every secret value replaced.

    Args:
        url: a URL, possibly with a query.
        params: extra query parameters (as given to aiohttp).

    Returns:
        The URL to show in logs and errors, e.g. ``https://h/p?location=1,2&key=REDACTED``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: show it without the secret values it may hold
        return scrub(url, secret_values(url, params)) + " (invalid URL)"
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(str(k), str(v)) for k, v in (params or {}).items()]
    if not query:
        return url
    safe = [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(safe, safe=",:/")))


def secret_values(url: str, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The values of the secret query parameters in ``url`` and ``params`` (non-empty ones)."""
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        query = re.findall(r"[?&]([^=&#]+)=([^&#]*)", url)
    query += [(str(k), str(v)) for k, v in (params or {}).items()]
    return tuple(v for k, v in query if k.lower() in SECRET_PARAMS and v)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``REDACTED``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def make_session(
    *, timeout_s: float = 60.0, limit: int = 100, headers: Mapping[str, str] | None = None
) -> aiohttp.ClientSession:
    """An :class:`aiohttp.ClientSession` for the fetchers; call it inside a running event loop.

    Args:
        timeout_s: total timeout of one attempt (connect + read), seconds.
        limit: connections open at once.
        headers: default headers (a ``User-Agent`` is added unless given).

    Returns:
        The session; use it as ``async with make_session() as session:``.
    """
    merged = {"User-Agent": USER_AGENT, **(headers or {})}
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        connector=aiohttp.TCPConnector(limit=limit),
        headers=merged,
    )


def is_retryable(status: int) -> bool:
    """Whether an HTTP status is worth another attempt (429 and every 5xx)."""
    return status == 429 or 500 <= status < 600


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(
    attempt: int,
    backoff: float,
    *,
    max_delay: float = 60.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    Exponential back-off with "equal jitter": a uniform draw in ``[d/2, d]`` with
    ``d = min(max_delay, backoff * 2**attempt)``; a longer ``Retry-After`` wins, capped at
    ``max_delay``.

    Args:
        attempt: the failed attempt, from 0.
        backoff: the base delay in seconds.
        max_delay: upper bound of any wait.
        retry_after: what the server asked for (seconds), if anything.
        rng: random source for the jitter (default: the ``random`` module).
    """
    d = min(max_delay, backoff * 2**attempt)
    wait = d / 2 + (rng or random).uniform(0, d / 2)
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_delay))
    return wait


async def request_with_retry(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    retries: int = 5,
    backoff: float = 0.5,
    max_delay: float = 60.0,
    rng: random.Random | None = None,
) -> Response:
    """Send a request, retrying on 429, 5xx, connection errors and timeouts.

    Args:
        session: the aiohttp session.
        method: ``"GET"``, ``"POST"``, ...
        url: the URL (may carry a query).
        params: query parameters; secret ones (``key`` ...) are never logged.
        headers: extra request headers.
        json_body: a JSON request body, if any.
        retries: further attempts after the first.
        backoff: base of the exponential back-off, seconds (see :func:`retry_delay`).
        max_delay: the longest single wait, seconds (also caps ``Retry-After``).
        rng: random source for the jitter.

    Returns:
        The response of the first attempt whose status is not retryable (any 2xx, 3xx or 4xx
        other than 429); check it with :meth:`Response.raise_for_status`.

    Raises:
        HTTPError: the last attempt still failed (names the method, the redacted URL, the last
            status or error and the number of attempts), or the request could not be sent at all
            (e.g. an invalid URL).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    shown = redact_url(url, params)
    secrets = secret_values(url, params)
    status: int | None = None
    for attempt in range(retries + 1):
        retry_after, fatal = None, None
        try:
            async with session.request(
                method, url, params=params, headers=headers, json=json_body
            ) as resp:
                body = await resp.read()
                status = resp.status
                if not is_retryable(status):
                    return Response(status, resp.headers, body, shown, method, attempt + 1, secrets)
                reason = f"HTTP {status}"
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except _TRANSIENT_ERRORS as err:
            status, reason = None, scrub(f"{type(err).__name__}: {err}", secrets)
        except aiohttp.ClientError as err:
            fatal = f"{method} {shown}: {scrub(f'{type(err).__name__}: {err}', secrets)}"
        if fatal:  # raised here, not in the except block, so no exception with the key is chained
            raise HTTPError(fatal, shown)
        if attempt == retries:
            break
        wait = retry_delay(attempt, backoff, max_delay=max_delay, retry_after=retry_after, rng=rng)
        log.info("%s %s: %s, retry %d in %.2f s", method, shown, reason, attempt + 1, wait)
        await asyncio.sleep(wait)
    raise HTTPError(f"{method} {shown}: {reason} after {retries + 1} attempts", shown, status)


async def gather_limited(
    funcs: Iterable[Callable[[], Awaitable[T]]],
    *,
    concurrency: int,
    desc: str | None = None,
    unit: str = "it",
    return_exceptions: bool = False,
) -> list[T | BaseException]:
    """Run coroutine factories with at most ``concurrency`` in flight, with a progress bar.

    Args:
        funcs: zero-argument callables returning awaitables (called only when a slot is free).
        concurrency: the most that run at once (an :class:`asyncio.Semaphore`).
        desc: the progress bar's label; None shows no bar.
        unit: the progress bar's unit.
        return_exceptions: put exceptions in the result list instead of raising the first one
            (as :func:`asyncio.gather`). When one is raised, the others are cancelled first.

    Returns:
        The results in the order of ``funcs``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    funcs = list(funcs)
    sem = asyncio.Semaphore(concurrency)
    with tqdm(total=len(funcs), desc=desc, unit=unit, disable=None if desc else True) as bar:

        async def one(func: Callable[[], Awaitable[T]]) -> T:
            async with sem:
                try:
                    return await func()
                finally:
                    bar.update(1)

        tasks = [asyncio.ensure_future(one(f)) for f in funcs]
        try:
            return await asyncio.gather(*tasks, return_exceptions=return_exceptions)
        except BaseException:  # the first error: cancel the rest, then raise it
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
