"""Generated blocks in docs/: the tables match the files the pipeline wrote."""

from pathlib import Path

import pytest

from geolab.reporting.docs import diff_range, docs_main, fill, table, update

ROOT = Path(__file__).resolve().parents[1]
DOC = "intro\n<!-- generated: a -->\nold\n<!-- /generated: a -->\nend\n"


def test_fill_replaces_only_the_block():
    assert fill(DOC, {"a": "new"}) == DOC.replace("old", "new")
    assert fill(fill(DOC, {"a": "x\n"}), {"a": "x\n"}) == DOC.replace("old", "x")


def test_fill_errors_name_the_block():
    with pytest.raises(KeyError, match="no generator for block 'a'"):
        fill(DOC, {}, "d.md")
    with pytest.raises(KeyError, match=r"\['b'\] are not in the doc"):
        fill(DOC, {"a": "", "b": ""}, "d.md")


def test_table():
    assert table(["x", "y"], [[1, 0.12345]]) == "| x | y |\n|---|---|\n| 1 | 0.123 |\n"


def test_docs_are_up_to_date():
    """Fails when a committed result changed but `geolab docs` was not run."""
    assert update(ROOT, check=True) == []


def test_docs_main_check_and_write(tmp_path, monkeypatch, capsys):
    import geolab.reporting.docs as docs

    (tmp_path / "d.md").write_text(DOC)
    monkeypatch.setattr(docs, "REPORTS", {"d.md": "test_docs:_blocks"})
    assert docs_main(["--root", str(tmp_path), "--check"]) == 1
    assert "d.md: out of date" in capsys.readouterr().err
    assert (tmp_path / "d.md").read_text() == DOC
    assert docs_main(["--root", str(tmp_path)]) == 0
    assert docs_main(["--root", str(tmp_path), "--check"]) == 0
    assert "| n |" in (tmp_path / "d.md").read_text()


def _blocks(root):
    return {"a": table(["n"], [[1]])}


def test_diff_range_signs_every_number_and_blanks_a_missing_diff() -> None:
    assert diff_range({"mean": 0.0125, "min": -0.02, "max": 0.1}) == "+0.013 [-0.020, +0.100]"
    assert diff_range(None) == ""
    assert diff_range({}) == ""
