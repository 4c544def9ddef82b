"""Offline plot rendering against a real DVC repository in a temporary directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import git, init_dvc_repo
from PIL import Image

from geolab.reporting import repo as repo_mod
from geolab.reporting.plots import PlotsError, plots_main, render_plots

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or repo_mod.dvc_command() is None, reason="needs git and dvc"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DVC_YAML = """\
plots:
  - plots/loss.tsv:
      x: step
      y: loss
  - plots/acc.json:
      x: step
      y: acc
  - images
"""


def _write_plots(repo: Path, losses: list[float], color: tuple[int, int, int]) -> None:
    (repo / "plots").mkdir(exist_ok=True)
    (repo / "images").mkdir(exist_ok=True)
    rows = "".join(f"{i}\t{v}\n" for i, v in enumerate(losses))
    (repo / "plots/loss.tsv").write_text("step\tloss\n" + rows, encoding="utf-8")
    acc = [{"step": i, "acc": 1 - v} for i, v in enumerate(losses)]
    (repo / "plots/acc.json").write_text(json.dumps(acc), encoding="utf-8")
    Image.new("RGB", (16, 12), color).save(repo / "images/confusion.png")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two commits (tags v1, v2) of a line plot, a JSON plot and an image plot."""
    repo = tmp_path_factory.mktemp("plots-repo")
    dvc = repo_mod.dvc_command()
    assert dvc is not None
    init_dvc_repo(repo, dvc)
    (repo / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    for tag, losses, color in [
        ("v1", [1.0, 0.5, 0.3], (255, 0, 0)),
        ("v2", [1.0, 0.4, 0.2], (0, 0, 255)),
    ]:
        _write_plots(repo, losses, color)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", tag)
        git(repo, "tag", tag)
    return repo


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] > 0 and img.size[1] > 0


def _check_index(index: Path, pictures: list[Path]) -> None:
    assert index.name == "index.md"
    links = re.findall(r"\]\(([^)]+)\)", index.read_text(encoding="utf-8"))
    assert sorted(links) == sorted(p.name for p in pictures)
    assert all((index.parent / link).is_file() for link in links)


def test_workspace_via_cli(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "plots"
    monkeypatch.chdir(repo)
    assert plots_main(["--out", str(out)]) == 0
    pictures = sorted(out.glob("*.png"))
    names = {p.name for p in pictures}
    assert names == {"plots_loss.tsv.png", "plots_acc.json.png", "images_confusion--workspace.png"}
    for path in pictures:
        _check_png(path)
    _check_index(out / "index.md", pictures)
    assert not (repo / "dvc_plots").exists()  # DVC's image copies went to a temporary dir


def test_diff_two_revisions(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "diff"
    paths = render_plots(["v1", "v2"], out, repo)
    *pictures, index = paths
    assert {p.name for p in pictures} == {
        "plots_loss.tsv.png",
        "plots_acc.json.png",
        "images_confusion--v1.png",
        "images_confusion--v2.png",
    }
    for path in pictures:
        _check_png(path)
    with Image.open(out / "images_confusion--v1.png") as img:
        assert img.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    _check_index(index, pictures)
    assert "Revisions: v1, v2" in index.read_text(encoding="utf-8")


def test_bad_revision(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(PlotsError, match="unknown revision 'nosuch'"):
        render_plots(["v1", "nosuch"], tmp_path / "bad", repo)
    assert plots_main(["--repo", str(repo), "--rev", "nosuch", "--out", str(tmp_path / "b")]) == 1


def test_bad_out_is_one_line_before_any_work(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "out" / "index.md").mkdir(parents=True)
    for out, message in [
        (afile, f"{afile}: is a file; give a directory for the pictures"),
        (afile / "sub", f"{afile / 'sub'}: cannot create it, {afile} is a file"),
        (tmp_path / "out", f"{tmp_path / 'out' / 'index.md'}: is a directory; cannot write"),
    ]:
        assert plots_main(["--repo", str(repo), "--out", str(out)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"plots: error: {message}")
        assert captured.err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.md"]


def test_unknown_target_is_an_error_naming_the_known_plots(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert plots_main(["--repo", str(repo), "--out", str(out), "plots/loss.tsv", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plots: error: no plot 'nosuch'; the plots are: ")
    assert "'plots/loss.tsv'" in err and "'plots/acc.json'" in err and "images" in err
    assert not out.exists()  # nothing written
    with pytest.raises(PlotsError, match="no plot 'nosuch'"):
        render_plots(["v1", "v2"], out, repo, ["nosuch"])
    # a directory of image plots, a plot file and the dvc.yaml itself are all known targets
    *pictures, _ = render_plots(None, out, repo, ["./images/", "plots/loss.tsv"])
    assert {p.name for p in pictures} == {"images_confusion--workspace.png", "plots_loss.tsv.png"}
    assert len(render_plots(None, tmp_path / "all", repo, ["dvc.yaml"])) > 1


def test_plot_swallowed_by_rev_gets_a_hint(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    where = ["--repo", str(repo), "--out", str(out)]
    assert plots_main([*where, "--rev", "v1", "plots/loss.tsv"]) == 1
    err = capsys.readouterr().err
    assert "unknown revision 'plots/loss.tsv'" in err
    assert "'plots/loss.tsv' is a plot: --rev takes every word after it" in err
    assert "-- 'plots/loss.tsv'" in err
    assert not out.exists()
    # the suggested forms work, and a plain unknown revision gets no hint
    assert plots_main([*where, "--rev", "v1", "--", "plots/loss.tsv"]) == 0
    assert plots_main([*where, "plots/loss.tsv", "--rev", "v1"]) == 0
    assert {p.name for p in out.glob("*.png")} == {"plots_loss.tsv.png"}
    assert plots_main(["--repo", str(repo), "--rev", "nosuch", "--out", str(out)]) == 1
    assert "is a plot" not in capsys.readouterr().err
