"""geolab.reporting.ner: one doc block per seed-benchmark result file."""

import json

from geolab.reporting.ner import seeds_blocks


def _result(f1):
    entity = {"precision": {"mean": f1}, "recall": {"mean": f1},
              "f1": {"mean": f1, "sd": 0.0}}  # fmt: skip
    sets = {
        "fewnerd": {"per_seed": {"1": {"f1": f1}}, **entity},
        "generated": {"per_seed": {"1": {"f1": f1}}, **entity},
    }
    return {"seeds": [1], "key": "f1", "configs": {"baseline": {"set": [], **sets}}}


def test_each_result_file_gets_its_block(tmp_path):
    folder = tmp_path / "benchmarks" / "results"
    folder.mkdir(parents=True)
    for name, f1 in (("ner_seeds", 0.5), ("ner_seeds_join", 0.6), ("seg_seeds", 0.7)):
        (folder / f"{name}.json").write_text(json.dumps(_result(f1)))
    got = seeds_blocks(tmp_path)
    assert sorted(got) == ["ner-seeds", "ner-seeds-join"]  # seg's file is not the ner doc's
    assert "0.500" in got["ner-seeds"] and "0.600" in got["ner-seeds-join"]
