"""Generated blocks in docs/: the tables match the files the pipeline wrote."""

from pathlib import Path

import pytest

from geolab.reporting.docs import DocsError, diff_range, docs_main, fill, table, update

ROOT = Path(__file__).resolve().parents[1]
DOC = "intro\n<!-- generated: a -->\nold\n<!-- /generated: a -->\nend\n"


def test_fill_replaces_only_the_block():
    assert fill(DOC, {"a": "new"}) == DOC.replace("old", "new")
    assert fill(fill(DOC, {"a": "x\n"}), {"a": "x\n"}) == DOC.replace("old", "x")


def test_fill_errors_name_the_block():
    with pytest.raises(
        DocsError, match=r"^d\.md: line 2: no generator for block 'a'; it makes none$"
    ):
        fill(DOC, {}, "d.md")
    with pytest.raises(DocsError, match=r"^d\.md: block 'b' is not in the doc \(add '<!-- gen"):
        fill(DOC, {"a": "", "b": ""}, "d.md")
    with pytest.raises(DocsError, match=r"^d\.md: blocks 'b', 'c' are not in the doc"):
        fill(DOC, {"a": "", "b": "", "c": ""}, "d.md")


START, END = "<!-- generated: a -->", "<!-- /generated: a -->"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # end marker missing or misspelled: the start is not closed
        (f"x\n{START}\nold\n", "line 2: block 'a' is not closed (no '<!-- /generated: a -->'"),
        (f"{START}\nold\n<!-- /generatd: a -->\n", "line 1: block 'a' is not closed"),
        (
            f"{START}\nold\n<!-- /generated: b -->\n",
            "line 3: end of block 'b', but block 'a' (line 1)",
        ),
        # a stray end marker, or a start marker misspelled
        (f"x\n{END}\n", "line 2: end of block 'a' without a start"),
        (f"<!-- generatd: a -->\nold\n{END}\n", "line 3: end of block 'a' without a start"),
        (f"{START}\n<!-- generated: b -->\n", "line 2: block 'b' starts inside block 'a' (line 1)"),
        (f"{START} text\nold\n{END}\n", "line 1: block 'a': write the marker alone on its line"),
        (f"<!-- generated: a b -->\nold\n{END}\n", "line 1: block 'a b': write the marker alone"),
        # a closed block with an unknown name
        (
            "x\n\n<!-- generated: z -->\nold\n<!-- /generated: z -->\n",
            "line 3: no generator for block 'z'; it makes 'a'",
        ),
    ],
)
def test_broken_markers_name_doc_block_and_line(text, message, tmp_path, monkeypatch, capsys):
    import geolab.reporting.docs as docs

    with pytest.raises(DocsError) as info:
        fill(text, {"a": "new"}, "d.md")
    assert str(info.value).startswith(f"d.md: {message}")
    (tmp_path / "d.md").write_text(text)
    monkeypatch.setattr(docs, "REPORTS", {"d.md": "test_docs:_blocks"})
    for argv in [["--check"], []]:
        assert docs_main(["--root", str(tmp_path), *argv]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"docs: error: d.md: {message}")
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert (tmp_path / "d.md").read_text() == text


def test_docs_main_missing_doc(tmp_path, monkeypatch, capsys):
    import geolab.reporting.docs as docs

    monkeypatch.setattr(docs, "REPORTS", {"d.md": "test_docs:_blocks"})
    assert docs_main(["--root", str(tmp_path), "--check"]) == 2
    assert capsys.readouterr().err == "docs: error: d.md: cannot read: No such file or directory\n"


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
