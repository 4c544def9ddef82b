"""The LLM data path of study ``ner`` against a local fake OpenAI server (no network, no key)."""

import asyncio
import collections
import json
import logging
from pathlib import Path

import openai
import pytest
from ner_fake_llm import CONTENT_FAULTS, FakeLLM, seeded_content_faults

from geolab.ner.dataset import check_sentence, read_jsonl, write_jsonl
from geolab.ner.generate import (
    RESPONSE_FORMAT,
    LLMConfigError,
    fix_tags,
    generate_llm,
    generate_llm_dataset,
    mountain_tagged,
    plan_jobs,
    read_cache,
)

KEY = "test-key-123"
MOUNTAINS = [
    "Mont Blanc",
    "Matterhorn",
    "Mount Everest",
    "K2",
    "Piz Palü",
    "Eiger",
    "Jungfrau",
    "Denali",
    "Aconcagua",
    "Mount Kilimanjaro",
    "Ben Nevis",
    "Mount Fuji",
    "Monte Rosa",
    "Zugspitze",
    "Mount Rainier",
    "Table Mountain",
    "Grossglockner",
    "Mount St. Elias",
    "Dent Blanche",
    "Piz Bernina",
    "Mount Cook",
    "Annapurna",
    "Kangchenjunga",
    "Mount Olympus",
]
N = len(MOUNTAINS)
ZERO = (
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
    "missing",
)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def generate(srv: FakeLLM, cache: Path, n: int = N, **kwargs):
    kwargs.setdefault("timeout_s", 5.0)
    return generate_llm_dataset(MOUNTAINS, n, base_url=srv.base_url, cache=cache, **kwargs)


def cache_lines(cache: Path) -> list[dict]:
    return [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]


def assert_valid(sentences, n_expected: int) -> None:
    assert len(sentences) == n_expected
    assert len({s.id for s in sentences}) == n_expected
    for s in sentences:
        check_sentence(s.tokens, s.tags, s.id)
        assert s.source == "llm" and s.mountain in MOUNTAINS
        assert mountain_tagged(s.tokens, s.tags, s.mountain)


# ------------------------------------------------------------------------ pure functions


def test_plan_draws_without_repetition_and_is_prefix_stable():
    jobs = plan_jobs(MOUNTAINS + ["Eiger", " ", ""], 2 * N + 5, seed=7)
    assert [j.id for j in jobs] == list(range(2 * N + 5))
    for cycle in range(2):
        assert sorted(j.mountain for j in jobs[cycle * N : (cycle + 1) * N]) == sorted(MOUNTAINS)
    assert plan_jobs(MOUNTAINS, 10, seed=7) == jobs[:10]
    assert plan_jobs(MOUNTAINS, 10, seed=8) != jobs[:10]
    with pytest.raises(ValueError, match="no mountain"):
        plan_jobs(["", "  "], 3, seed=0)


def test_mountain_must_be_tagged_exactly_where_it_occurs():
    toks = ["The", "view", "of", "the", "Mont", "Blanc", "massif", "."]
    assert mountain_tagged(
        toks, ["O", "O", "O", "O", "B-MOUNTAIN", "I-MOUNTAIN", "O", "O"], "Mont Blanc"
    )
    # too short, too long, missing, case-insensitive name
    assert not mountain_tagged(
        toks, ["O", "O", "O", "O", "B-MOUNTAIN", "O", "O", "O"], "Mont Blanc"
    )
    too_long = ["O", "O", "O", "O", "B-MOUNTAIN", "I-MOUNTAIN", "I-MOUNTAIN", "O"]
    assert not mountain_tagged(toks, too_long, "Mont Blanc")
    assert not mountain_tagged(toks, ["O"] * 8, "Eiger")
    assert mountain_tagged(["mont", "blanc"], ["B-MOUNTAIN", "I-MOUNTAIN"], "Mont Blanc")
    # the name is re-tokenised like the data: "St." -> "St", "."
    assert mountain_tagged(
        ["Mount", "St", ".", "Elias", "is", "high"],
        ["B-MOUNTAIN"] + ["I-MOUNTAIN"] * 3 + ["O"] * 2,
        "Mount St. Elias",
    )
    # every occurrence must be tagged
    toks2 = ["Eiger", "and", "Eiger"]
    assert not mountain_tagged(toks2, ["B-MOUNTAIN", "O", "O"], "Eiger")
    assert mountain_tagged(toks2, ["B-MOUNTAIN", "O", "B-MOUNTAIN"], "Eiger")


def test_fix_tags_replaces_unknown_and_repairs_iob2():
    tags, fixed, repaired = fix_tags(["I-MOUNTAIN", "B-PEAK", "I-MOUNTAIN", "O", "x"])
    assert tags == ["B-MOUNTAIN", "O", "B-MOUNTAIN", "O", "O"]
    assert (fixed, repaired) == (2, 2)


def test_read_cache_skips_a_corrupt_middle_line_and_drops_a_cut_last_line(tmp_path):
    cache = tmp_path / "c.jsonl"
    good = json.dumps({"id": 0, "mountain": "K2", "content": "{}"})
    cache.write_text(f"{good}\nnot json\n{good}\n" + '{"id": 3, "moun', encoding="utf-8")
    stats = collections.Counter()
    assert len(read_cache(cache, stats)) == 2
    assert stats == {"corrupt_cache_lines": 1, "truncated_cache_lines": 1}
    assert cache.read_text(encoding="utf-8").endswith(f"{good}\n")  # cut line removed
    cache.write_text(f"{good}\n" + '{"id": 3, "moun\n', encoding="utf-8")  # cut, with newline
    stats = collections.Counter()
    assert len(read_cache(cache, stats)) == 1 and stats == {"truncated_cache_lines": 1}
    assert cache.read_text(encoding="utf-8") == f"{good}\n"


# ------------------------------------------------------------------------ (a) clean server


def test_clean_server_gives_n_valid_sentences(tmp_path, key):
    cache = tmp_path / "llm" / "cache.jsonl"
    with FakeLLM(expected_key=KEY, delay_s=0.05) as srv:
        sentences, stats = generate(srv, cache, concurrency=4)
    assert_valid(sentences, N)
    assert [s.id for s in sentences] == [f"llm-{i:06d}" for i in range(1, N + 1)]
    assert sorted(s.mountain for s in sentences) == sorted(MOUNTAINS)
    assert stats["requests_sent"] == stats["kept"] == stats["requested"] == N
    assert all(stats[k] == 0 for k in ZERO), stats
    assert stats["per_mountain"] == dict.fromkeys(sorted(MOUNTAINS), 1)
    json.dumps(stats)  # the stage writes it as JSON
    # the server: one attempt per request, each mountain once, the semaphore respected
    assert srv.requests == srv.first_attempts == N
    assert sorted(srv.mountains) == sorted(MOUNTAINS)
    assert 1 < srv.max_in_flight <= 4
    body = srv.bodies[0]
    assert body["response_format"] == RESPONSE_FORMAT and body["temperature"] == 0.9
    assert body["model"] == "gpt-4o-mini" and "B-MOUNTAIN" in body["messages"][0]["content"]
    # every reply is in the cache; the dataset round-trips through the strict reader
    assert sorted(r["id"] for r in cache_lines(cache)) == list(range(N))
    write_jsonl(tmp_path / "out.jsonl", sentences)
    assert read_jsonl(tmp_path / "out.jsonl") == sentences


def test_more_sentences_than_mountains_cycles_without_duplicates(tmp_path, key):
    with FakeLLM() as srv:
        sentences, stats = generate(srv, tmp_path / "c.jsonl", n=2 * N)
    assert_valid(sentences, 2 * N)
    assert stats["per_mountain"] == dict.fromkeys(sorted(MOUNTAINS), 2)
    assert stats["duplicates"] == 0


# ------------------------------------------------------------------------ (b) storms


def test_storm_of_429_and_500_loses_nothing_with_retries(tmp_path, key):
    with FakeLLM(transient_rate=0.25, seed=1) as srv:
        sentences, stats = generate(srv, tmp_path / "c.jsonl", max_retries=5)
    assert_valid(sentences, N)
    assert stats["failed_requests"] == 0 and stats["missing"] == 0
    n_faults = sum(srv.transient.values())
    assert set(srv.transient) == {"429", "500"}
    assert 0.2 <= n_faults / srv.requests <= 0.3  # a 20-30 % storm
    # every fault was retried by the SDK, and the client saw exactly the retries the server saw
    assert stats["requests_sent"] == srv.first_attempts == N
    assert stats["retries"] == srv.retries == n_faults > 0
    assert srv.requests == N + n_faults


def test_storm_without_retries_counts_failures_and_a_rerun_fills_them(tmp_path, key):
    cache = tmp_path / "c.jsonl"
    with FakeLLM(transient_rate=0.25, seed=1) as srv:
        sentences, stats = generate(srv, cache, max_retries=0)
        failed = sum(srv.transient.values())
        assert failed > 0 and srv.requests == N and srv.retries == 0
        assert stats["failed_requests"] == stats["missing"] == failed
        assert stats["retries"] == 0
        assert_valid(sentences, N - failed)
        errors = [r for r in cache_lines(cache) if "error" in r]
        assert len(errors) == failed
        assert all(r["error"].startswith(("RateLimitError", "InternalServerError")) for r in errors)
        # the failed requests, and only they, are asked again
        before = srv.requests
        sentences, stats = generate(srv, cache, max_retries=5)
    assert srv.first_attempts - N == stats["requests_sent"] == failed
    assert stats["cached_replies"] == N - failed
    assert srv.requests - before == failed + stats["retries"]
    assert_valid(sentences, N)


def test_slow_replies_time_out_and_are_retried(tmp_path, key):
    with FakeLLM(
        transient_rate=0.25, transient_kinds=("slow",), transient_attempts=1, slow_s=1.5
    ) as srv:
        sentences, stats = generate(srv, tmp_path / "c.jsonl", timeout_s=0.5, max_retries=2)
    assert srv.transient["slow"] > 0
    assert stats["retries"] == srv.retries == srv.transient["slow"]
    assert stats["failed_requests"] == 0
    assert_valid(sentences, N)


# ------------------------------------------------------------------------ (c) junk replies


def test_junk_replies_are_dropped_or_fixed_and_counted_exactly(tmp_path, key):
    faults = seeded_content_faults(MOUNTAINS, CONTENT_FAULTS, per_kind=2, seed=3)
    with FakeLLM(content_faults=faults) as srv:
        sentences, stats = generate(srv, tmp_path / "c.jsonl", n=2 * N)  # each mountain twice
    inj = srv.injected
    assert set(inj) == set(CONTENT_FAULTS)
    assert stats["unparsable"] == inj["invalid_json"] + inj["missing_field"] == 8
    assert stats["fixed_tags"] == inj["wrong_tag"] == 4
    assert stats["repaired_iob2"] == inj["iob"] == 4
    assert stats["length_mismatch"] == inj["length_mismatch"] == 4
    assert stats["mountain_not_tagged"] == inj["not_tagged"] == 4
    assert stats["bad_tokens"] == inj["whitespace_token"] == 4
    assert stats["duplicates"] == inj["duplicate"] == 2
    assert stats["failed_requests"] == inj["bad_body"] == 4  # HTTP 200 with a non-JSON body
    dropped = 8 + 4 + 4 + 4 + 2 + 4
    assert stats["kept"] == 2 * N - dropped
    assert_valid(sentences, 2 * N - dropped)
    kept_faults = collections.Counter(faults.get(s.mountain) for s in sentences)
    assert kept_faults == {None: 2 * 6, "wrong_tag": 4, "iob": 4, "duplicate": 2}


def test_validation_changes_apply_to_cached_replies(tmp_path, key, monkeypatch):
    cache = tmp_path / "c.jsonl"
    with FakeLLM(content_faults={"Eiger": "wrong_tag"}) as srv:
        generate(srv, cache)
    monkeypatch.setattr("geolab.ner.generate.LABELS", ("O", "B-MOUNTAIN", "I-MOUNTAIN", "B-PEAK"))
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLM() as srv:
        sentences, stats = generate(srv, cache)
    assert srv.requests == 0 and stats["cached_replies"] == N and stats["fixed_tags"] == 0
    assert next(s for s in sentences if s.mountain == "Eiger").tags[-1] == "B-PEAK"


# ------------------------------------------------------------------------ (d) resumability


def test_rerun_sends_only_the_missing_requests(tmp_path, key, monkeypatch):
    cache = tmp_path / "c.jsonl"
    with FakeLLM() as srv:
        first, stats = generate(srv, cache, max_requests=10)
        assert srv.requests == stats["requests_sent"] == stats["kept"] == 10
        assert stats["missing"] == N - 10
        assert len(cache_lines(cache)) == 10
        # a crash while the last line was being written
        raw = cache.read_bytes()
        cache.write_bytes(raw[:-25])
        cut = json.loads(raw.decode().splitlines()[-1])
        asked_before = list(srv.mountains)

        sentences, stats = generate(srv, cache)
        asked_now = srv.mountains[len(asked_before) :]
    assert stats["truncated_cache_lines"] == 1 and stats["cached_replies"] == 9
    assert stats["requests_sent"] == len(asked_now) == N - 9
    assert sorted(asked_before + asked_now) == sorted(MOUNTAINS + [cut["mountain"]])
    assert_valid(sentences, N)
    assert [s.id for s in sentences] == [f"llm-{i:06d}" for i in range(1, N + 1)]
    by_id = {s.id: s for s in sentences}
    assert all(by_id[s.id] == s for s in first if s.id != f"llm-{cut['id'] + 1:06d}")
    lines = cache_lines(cache)  # the cut line is gone; every line is JSON
    assert len(lines) == N and sorted(r["id"] for r in lines) == list(range(N))

    # a third run needs no request, hence no key: the dataset is rebuilt from the cache
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeLLM() as srv:
        again, stats = generate(srv, cache)
    assert srv.requests == 0 and stats["requests_sent"] == 0 and stats["cached_replies"] == N
    assert again == sentences


def test_zero_budget_sends_nothing(tmp_path, key):
    with FakeLLM() as srv:
        sentences, stats = generate(srv, tmp_path / "c.jsonl", max_requests=0)
    assert srv.requests == 0 and sentences == [] and stats["missing"] == N


def test_cache_of_another_gazetteer_is_not_used(tmp_path, key):
    cache = tmp_path / "c.jsonl"
    with FakeLLM() as srv:
        generate(srv, cache, n=5, seed=0)
        _, stats = generate(srv, cache, n=5, seed=1)
    assert stats["stale_cache"] + stats["cached_replies"] == 5 and stats["stale_cache"] > 0
    assert stats["requests_sent"] == stats["stale_cache"]


# ------------------------------------------------------------------------ (e) no key


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_key_is_a_clear_error_before_any_request(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", value)
    cache = tmp_path / "c.jsonl"
    with FakeLLM() as srv:
        msg = "OPENAI_API_KEY is not set; export it or use ner.source: template"
        with pytest.raises(LLMConfigError, match=msg):
            generate(srv, cache)
    assert srv.requests == 0 and not cache.exists()


def test_an_explicit_client_needs_no_environment_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    async def main(srv):
        async with openai.AsyncOpenAI(api_key="other", base_url=srv.base_url, max_retries=0) as c:
            return await generate_llm(MOUNTAINS, 3, cache=tmp_path / "c.jsonl", client=c)

    with FakeLLM() as srv:
        sentences, stats = asyncio.run(main(srv))
    assert len(sentences) == 3 and srv.requests == 3


# ------------------------------------------------------------------------ (f) the key stays secret


def test_key_never_reaches_cache_or_logs(tmp_path, key, caplog):
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "c.jsonl"
    faults = seeded_content_faults(MOUNTAINS, CONTENT_FAULTS, per_kind=1, seed=5)
    with FakeLLM(expected_key=KEY, content_faults=faults, transient_rate=0.3, seed=2) as srv:
        _, stats = generate(srv, cache, max_retries=0)
    assert stats["failed_requests"] > 0 and srv.requests == N  # the key was sent and accepted
    # a server that rejects the key and echoes it back, like the real API
    with FakeLLM(expected_key="another-key") as srv:
        with pytest.raises(LLMConfigError, match="AuthenticationError") as err:
            generate(srv, cache, n=2 * N, concurrency=2)
    assert srv.requests <= 2  # no new request after the first 401
    assert KEY not in str(err.value) and "<redacted>" in str(err.value)
    text = cache.read_text(encoding="utf-8")
    assert "<redacted>" in text and KEY not in text
    assert caplog.records and "AuthenticationError" in caplog.text
    for rec in caplog.records:
        assert KEY not in rec.getMessage() and KEY not in repr(rec.args)
    assert KEY not in caplog.text
