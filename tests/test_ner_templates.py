import json
import re
from pathlib import Path

import pytest

from geolab.ner.dataset import (
    LABELS,
    DatasetError,
    check_sentence,
    entities,
    read_conll,
    repair_iob2,
    tokenize,
)
from geolab.ner.templates import (
    _LANDFORM_WORDS,
    DOMAIN_BASES,
    GAZETTEER_KINDS,
    NEGATIVE_KINDS,
    NO_MOUNTAIN,
    TEMPLATES,
    Entry,
    faker_pools,
    generate_template_dataset,
    read_gazetteer,
    read_negatives,
    template_count,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ner"
FEWNERD = DATA / "fewnerd_dev_mountain_sents_BIO_MOUNTAIN.conll"

# a small gazetteer of real names (none of them a Few-NERD dev mention), every kind
GAZ = """\
name\tkind\tregion
Matterhorn\tpeak\tAlps
Mont Blanc\tmountain\tAlps
Weisshorn\tpeak\tAlps
Grossglockner\tmountain\tAlps
Piz Bernina\tpeak\tAlps
Monte Rosa\tmassif\tAlps
Dolomites\trange\tAlps
Bernese Alps\trange\tAlps
Aletsch Glacier\tglacier\tAlps
Mer de Glace\tglacier\tAlps
Brenner Pass\tpass\tAlps
Stelvio Pass\tpass\tAlps
Hörnli Ridge\tridge\tAlps
Nuptse\tpeak\tHimalaya
Lhotse\tpeak\tHimalaya
Kangchenjunga\tmountain\tHimalaya
Annapurna\tmassif\tHimalaya
Himalayas\trange\tHimalaya
Karakoram\trange\tHimalaya
Khumbu Glacier\tglacier\tHimalaya
Tibetan Plateau\tplateau\tHimalaya
Denali\tmountain\tNorth America
Mount Rainier\tvolcano\tNorth America
Mount Hood\tvolcano\tNorth America
Mount Whitney\tmountain\tNorth America
Pikes Peak\tmountain\tNorth America
Cascade Range\trange\tNorth America
Great Smoky Mountains\trange\tNorth America
Colorado Plateau\tplateau\tNorth America
Athabasca Glacier\tglacier\tNorth America
Donner Pass\tpass\tNorth America
Aconcagua\tmountain\tSouth America
Chimborazo\tvolcano\tSouth America
Cotopaxi\tvolcano\tSouth America
Andes\trange\tSouth America
Altiplano\tplateau\tSouth America
Kilimanjaro\tmountain\tAfrica
Mount Kenya\tmountain\tAfrica
Atlas Mountains\trange\tAfrica
Drakensberg\trange\tAfrica
Mount Etna\tvolcano\tEurope
Ben Nevis\tmountain\tEurope
Pyrenees\trange\tEurope
Caucasus\trange\tEurope
Malvern Hills\thills\tEurope
Chiltern Hills\thills\tEurope
Massif Central\tmassif\tEurope
Vatnajökull\tglacier\tEurope
Col du Tourmalet\tpass\tEurope
Striding Edge\tridge\tEurope
Aonach Eagach\tridge\tEurope
Mount Kinabalu\tmountain\tAsia
Tian Shan\trange\tAsia
Khyber Pass\tpass\tAsia
Aoraki\tmountain\tOceania
Mount Ruapehu\tvolcano\tOceania
Southern Alps\trange\tOceania
Tasman Glacier\tglacier\tOceania
Mount Vinson\tmountain\tAntarctica
Vestfold Hills\thills\tAntarctica
"""

# lookalikes of every kind; "Mount Kenya National Park" and "Mont Blanc Street" contain names
# of the gazetteer above and must still never be tagged
NEG = """\
name\tkind
Rhine\triver
Colorado River\triver
Drava\triver
Snake River\triver
Mount Vernon\tcity
Mountain View\tcity
Mount Isa\tcity
Denver\tcity
Zermatt\tcity
Chamonix\tcity
Innsbruck\tcity
Split\tcity
George Everest\tperson
Prince Rainier\tperson
Robin Hood\tperson
Lake Bled\tlake
Lake Como\tlake
Yosemite National Park\tpark
Mount Kenya National Park\tpark
Mountain Dew\tcompany
Montblanc\tcompany
Mont Blanc Street\tstreet
Mount Sinai Hospital\tinstitution
Mount Holyoke College\tinstitution
Montenegro\tregion
Kenya\tregion
Brokeback Mountain\tother
"""

N = 2000
FRAC = 0.3


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tpl")
    (d / "gazetteer.tsv").write_text(GAZ, encoding="utf-8")
    (d / "negatives.tsv").write_text(NEG, encoding="utf-8")
    return d / "gazetteer.tsv", d / "negatives.tsv"


@pytest.fixture(scope="module")
def generated(files):
    return generate_template_dataset(*files, N, FRAC, seed=7)


def lower_tokens(name: str) -> tuple[str, ...]:
    return tuple(t.lower() for t, _, _ in tokenize(name))


def occurrences(tokens: list[str], name: tuple[str, ...]) -> list[int]:
    low = [t.lower() for t in tokens]
    return [i for i in range(len(low) - len(name) + 1) if tuple(low[i : i + len(name)]) == name]


def test_readers(files):
    gaz = read_gazetteer(files[0])
    neg = read_negatives(files[1])
    assert len(gaz) == GAZ.count("\n") - 1
    assert gaz[0] == Entry("Matterhorn", "peak", "Alps")
    assert {e.kind for e in gaz} == set(GAZETTEER_KINDS)
    assert {e.kind for e in neg} == set(NEGATIVE_KINDS)
    assert all(e.region == "" for e in neg)


def test_deterministic(files, generated):
    again = generate_template_dataset(*files, N, FRAC, seed=7)
    assert again == generated
    other, _ = generate_template_dataset(*files, N, FRAC, seed=8)
    assert [s.tokens for s in other] != [s.tokens for s in generated[0]]


def test_counts_and_stats(generated):
    sentences, stats = generated
    assert len(sentences) == stats["sentences"] == N
    assert stats["negatives"] == round(N * FRAC) == sum(s.mountain is None for s in sentences)
    assert stats["positives"] == N - stats["negatives"]
    assert stats["entities"] == sum(len(entities(s.tags)) for s in sentences)
    assert stats["tokens"] == sum(len(s.tokens) for s in sentences)
    assert sum(stats["per_kind"].values()) == stats["positives"]
    assert set(stats["per_kind"]) == set(GAZETTEER_KINDS)
    assert stats["distinct_mountains"] == GAZ.count("\n") - 1
    assert stats["templates_used"] >= 300
    assert set(stats["per_template_group"]) == set(TEMPLATES)  # every group is used
    assert len({tuple(s.tokens) for s in sentences}) == N  # no duplicates


def test_valid_iob2_and_alignment(generated):
    sentences, _ = generated
    assert [s.id for s in sentences] == [f"tpl-{i:06d}" for i in range(1, N + 1)]
    for s in sentences:
        check_sentence(s.tokens, s.tags, s.id)
        assert set(s.tags) <= set(LABELS)
        assert repair_iob2(s.tags)[1] == 0, s  # no I- after O
        assert s.source == "template"
        # the tokens are what tokenize makes of the sentence text
        assert [t for t, _, _ in tokenize(s.text())] == s.tokens


def test_named_mountain_tagged(generated):
    sentences, _ = generated
    for s in sentences:
        if s.mountain is None:
            continue
        spans = {tuple(t.lower() for t in s.tokens[a:b]) for a, b in entities(s.tags)}
        spans = {tuple(re.sub(r"^mt \.", "mount", " ".join(x)).split()) for x in spans}
        assert lower_tokens(s.mountain) in spans, (s.mountain, s.text())
        # every occurrence of the name is tagged
        for i in occurrences(s.tokens, lower_tokens(s.mountain)):
            assert s.tags[i] == "B-MOUNTAIN", s.text()


def test_variants_present(generated):
    sentences, _ = generated
    texts = [s.text() for s in sentences]
    assert any(t == t.lower() for t in texts)  # some all-lowercase sentences
    assert any("Mt ." in t for t in texts)  # Mount X written Mt. X
    assert any("( )" in t for t in texts)  # the Few-NERD empty parentheses
    assert sum(len(entities(s.tags)) >= 3 for s in sentences) > 20  # lists of mountains


def test_the_never_inside_an_entity(generated):
    sentences, _ = generated
    before = 0
    for s in sentences:
        for a, b in entities(s.tags):
            assert "the" not in (t.lower() for t in s.tokens[a:b]), s.text()
            before += a > 0 and s.tokens[a - 1].lower() == "the"
    assert before > 300  # "the Alps": the article is there, outside


def test_negatives_all_o_and_lookalikes_never_tagged(files, generated):
    sentences, stats = generated
    gaz = [lower_tokens(e.name) for e in read_gazetteer(files[0])]
    neg = [lower_tokens(e.name) for e in read_negatives(files[1])]
    # "Kenya" inside "Mount Kenya" is part of a mountain; only whole lookalikes must stay O
    inside = {n for n in neg for g in gaz if occurrences(list(g), n)}
    assert inside == {("kenya",)}
    without_lookalike = 0
    for s in sentences:
        if s.mountain is None:
            assert set(s.tags) == {"O"}, s.text()
            without_lookalike += not any(occurrences(s.tokens, n) for n in neg)
        for n in set(neg) - inside:
            for i in occurrences(s.tokens, n):
                assert set(s.tags[i : i + len(n)]) == {"O"}, (n, s.text())
    # only the domain templates may go without a lookalike
    assert without_lookalike <= stats["per_template_group"]["domain"]
    texts = " ".join(s.text() for s in sentences)
    assert "Mount Kenya National Park" in texts and "Mont Blanc Street" in texts


def test_no_repetition_before_exhaustion(files, generated):
    sentences, _ = generated
    names = [e.name for e in read_gazetteer(files[0])]
    primaries = [s.mountain for s in sentences if s.mountain is not None]
    assert len(primaries) > len(names)
    assert sorted(primaries[: len(names)]) == sorted(names)
    small, _ = generate_template_dataset(*files, 40, 0.25, seed=1)
    first = [s.mountain for s in small if s.mountain]
    assert len(first) == 30 and len(set(first)) == 30


def test_templates():
    counts = template_count()
    assert counts["positive"] >= 300
    assert counts["negative"] >= 50 and counts["general"] >= 50 and counts["domain"] >= 50
    slot = re.compile(r"\{(\w+)\}")
    for group, templates in TEMPLATES.items():
        for t in templates:
            # the article is the generator's business: never "the {M}" in a template
            assert not re.search(r"\bthe \{(M|Mpos|[PRGS]\d)\}", t, re.I), t
            has_mountain = any(re.fullmatch(r"M|N|Mpos", x) for x in slot.findall(t))
            assert has_mountain == (group not in NO_MOUNTAIN), t
    assert all("{S1}" in t or "{M}" in t for t in TEMPLATES["pass"])


def template_regex(template: str) -> re.Pattern:
    """A template as a regex over ``Sentence.text()`` (tokens joined by spaces)."""

    def lit(text: str) -> str:
        return re.escape(" ".join(t for t, _, _ in tokenize(text)))

    parts, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}|\[([^\[\]|]*)\|([^\[\]|]*)\]", template):
        parts.append(lit(template[pos : m.start()]))
        parts.append(
            r"\S+(?: \S+){0,8}?" if m.group(1) else f"(?:{lit(m.group(2))}|{lit(m.group(3))})"
        )
        pos = m.end()
    parts.append(lit(template[pos:]))
    return re.compile(r"\s*".join(p for p in parts if p), re.I)


# which template groups may write a sentence about a mountain of each kind
ALLOWED = {
    "peak": ("summit", "summit_bare"),
    "mountain": ("summit", "summit_bare"),
    "volcano": ("summit", "summit_bare", "volcano"),
    "massif": ("range", "massif"),
    "range": ("range", "range_bare"),
    "hills": ("range", "hills"),
    "glacier": ("glacier",),
    "pass": ("pass",),
    "plateau": ("plateau",),
    "ridge": ("ridge",),
}


def test_kind_appropriate(generated):
    """Every sentence comes from a template group that fits its main mountain's kind."""
    sentences, _ = generated
    kinds = {e.name: e.kind for e in read_gazetteer_text(GAZ)}
    regexes = {
        g: re.compile("|".join(f"(?:{template_regex(t).pattern})" for t in ts), re.I)
        for g, ts in TEMPLATES.items()
    }
    own = {"glacier", "pass", "volcano", "plateau", "ridge", "hills", "massif"}
    for s in sentences[::5]:
        kind = "negative" if s.mountain is None else kinds[s.mountain]
        groups = list(NO_MOUNTAIN) if s.mountain is None else [*ALLOWED[kind], "any"]
        text = s.text()
        fits = {g for g, r in regexes.items() if r.fullmatch(text)}
        assert fits & set(groups), (kind, text)
        # a sentence that only a glacier (pass, volcano...) template can make is about one
        if len(fits) == 1 and fits <= own:
            assert fits <= set(groups), (kind, text)


def read_gazetteer_text(text: str) -> list[Entry]:
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    return [Entry(*row) for row in rows]


def test_bad_arguments(files):
    with pytest.raises(ValueError, match="negative_frac"):
        generate_template_dataset(*files, 10, 1.0, seed=0)
    with pytest.raises(ValueError, match="n_sentences"):
        generate_template_dataset(*files, -1, 0.3, seed=0)
    with pytest.raises(ValueError, match="join_frac"):
        generate_template_dataset(*files, 10, 0.3, seed=0, join_frac=1.5)


def test_join_sentences(files, generated):
    plain, plain_stats = generated
    sentences, stats = generate_template_dataset(*files, N, FRAC, seed=7, join_frac=0.25)
    n_pos = plain_stats["positives"]
    n_joined = round(0.25 * n_pos)
    assert stats["joined"] == n_joined and plain_stats["joined"] == 0
    # the same sentences, only regrouped: every joined negative is one example fewer
    assert stats["sentences"] == plain_stats["sentences"] - n_joined
    assert stats["positives"] == n_pos
    assert stats["negatives"] == plain_stats["negatives"] - n_joined
    assert stats["tokens"] == plain_stats["tokens"]
    assert stats["entities"] == plain_stats["entities"]
    assert [s.id for s in sentences] == [f"tpl-{i:06d}" for i in range(1, len(sentences) + 1)]
    plain_texts = {s.text() for s in plain}
    long = [s for s in sentences if s.text() not in plain_texts]
    assert len(long) == n_joined
    by_tokens = {tuple(p.tokens): p for p in plain}
    orders = set()
    for s in long:
        # a positive and a negative, each a whole generated sentence, in either order
        assert s.mountain is not None
        halves = [
            (by_tokens[tuple(s.tokens[:k])], by_tokens[tuple(s.tokens[k:])])
            for k in range(1, len(s.tokens))
            if tuple(s.tokens[:k]) in by_tokens and tuple(s.tokens[k:]) in by_tokens
        ]
        assert len(halves) == 1, s.text()
        a, b = halves[0]
        assert a.tags + b.tags == s.tags
        assert (a.mountain is None) != (b.mountain is None), s.text()
        assert s.mountain == (a.mountain or b.mountain)
        orders.add(a.mountain is None)
    assert orders == {True, False}
    # more joins than negatives: every negative is used once, none twice
    sentences, stats = generate_template_dataset(*files, N, FRAC, seed=7, join_frac=1.0)
    assert stats["joined"] == plain_stats["negatives"] and stats["negatives"] == 0


@pytest.mark.parametrize(
    ("reader", "text", "line", "message"),
    [
        (read_gazetteer, "name\tkind\tregion\nMatterhorn\tpeak\n", 2, "3 tab-separated"),
        (read_gazetteer, "name\tkind\tregion\nA\tpeak\tX\n\tpeak\tAlps\n", 3, "empty name"),
        (read_gazetteer, "name\tkind\tregion\nEiger\tvalley\tAlps\n", 2, "unknown kind"),
        (read_gazetteer, "name\tkind\tregion\nEiger\tpeak\tA\neiger\tpeak\tA\n", 3, "duplicate"),
        (read_gazetteer, "name\tkind\n", 1, "header"),
        (read_negatives, "name\tkind\nRhine\triver\tx\n", 2, "2 tab-separated"),
        (read_negatives, "name\tkind\nRhine\tstream\n", 2, "unknown kind"),
        (read_negatives, "name\tkind\nRhine\triver\nRhine\tcity\n", 3, "first on line 2"),
        (read_negatives, "", 1, "empty file"),
    ],
)
def test_malformed_tsv(tmp_path, reader, text, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:{line}:")) as err:
        reader(path)
    assert message in str(err.value)


def test_malformed_tsv_without_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("name\tkind\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: no entries")):
        read_negatives(path)
    path.write_bytes(b"name\tkind\nZ\xfcrich\tcity\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: not UTF-8")):
        read_negatives(path)
    with pytest.raises(DatasetError, match="file not found"):
        read_gazetteer(tmp_path / "missing.tsv")


def fewnerd_mentions() -> set[str]:
    if not FEWNERD.exists():
        pytest.skip(f"{FEWNERD} not present")
    mentions = set()
    for s in read_conll(FEWNERD):
        for a, b in entities(s.tags):
            mentions.add(" ".join(s.tokens[a:b]).lower())
    return mentions


def clashes(entries: list[Entry], mentions: set[str]) -> list[str]:
    out = []
    for e in entries:
        if e.name.lower() in mentions or " ".join(lower_tokens(e.name)) in mentions:
            out.append(e.name)
    return out


def test_test_gazetteer_is_not_fewnerd():
    assert clashes(read_gazetteer_text(GAZ), fewnerd_mentions()) == []


def test_real_gazetteer_shares_no_name_with_fewnerd():
    path = DATA / "gazetteer.tsv"
    if not path.exists():
        pytest.skip(f"{path} not compiled yet")
    assert clashes(read_gazetteer(path), fewnerd_mentions()) == []


def test_negatives_file():
    path = DATA / "negatives.tsv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    neg = read_negatives(path)
    assert len(neg) >= 200
    assert {e.kind for e in neg} == set(NEGATIVE_KINDS)
    # a Few-NERD mention written as a negative would teach the model the opposite of the test
    assert clashes(neg, fewnerd_mentions()) == []


def test_faker_pools_are_deterministic_diverse_and_not_landforms():
    pools = faker_pools(3, exclude={"Eskilstuna"})
    assert pools == faker_pools(3, exclude={"Eskilstuna"})
    assert pools != faker_pools(4)
    for kind, names in pools.items():
        assert len(names) > 300, kind
        for name in names:
            assert not set(re.findall(r"\w+", name.casefold())) & _LANDFORM_WORDS, name
    assert "Eskilstuna" not in pools["city"]
    letters = {c for name in pools["person"] for c in name}
    assert {"ł", "ä", "ç", "ğ"} <= letters  # Polish, Finnish, French, Turkish names


def test_faker_pools_do_not_depend_on_the_hash_seed():
    """Some Faker locales (it_IT) pick from sets: their names change with PYTHONHASHSEED."""
    import hashlib
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, json; from geolab.ner.templates import faker_pools; "
        "print(hashlib.md5(json.dumps(faker_pools(1)).encode()).hexdigest())"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert digests == {hashlib.md5(json.dumps(faker_pools(1)).encode()).hexdigest()}


def test_faker_names_share_nothing_with_fewnerd():
    mentions = fewnerd_mentions()
    pools = faker_pools(42)
    names = [Entry(n, "other") for names in pools.values() for n in names]
    assert clashes(names, mentions) == []


def test_clubs_are_named_after_towns():
    import random

    from geolab.ner.templates import _domain_value

    pools = {"city": ["Kumrovec"], "surname": ["Horvat"], "person": [], "company": []}
    rng = random.Random(0)
    assert all("Kumrovec" in _domain_value("club", rng, pools) for _ in range(20))


def test_domain_templates_fill_every_slot(files):
    slots = {m for t in TEMPLATES["domain"] for m in re.findall(r"\{([a-z]+)\d?\}", t)}
    assert slots & DOMAIN_BASES == DOMAIN_BASES  # every domain filler is used
    sentences, stats = generate_template_dataset(*files, 400, 0.5, seed=5)
    assert stats["per_template_group"]["domain"] > 20
    for s in sentences:
        assert "{" not in s.text() and "}" not in s.text(), s.text()
