"""benchmarks/seeds.py: stage commands redirected per study, overrides, scores, pairing by seed."""

from __future__ import annotations

import runpy
import shlex
import tempfile
from pathlib import Path

import pytest
import yaml

from geolab.common.io import write_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(ROOT / "benchmarks" / "seeds.py"), run_name="bench")


@pytest.mark.parametrize("study", ["ner", "seg"])
def test_stage_commands_write_only_into_the_scratch_folder(bench, study):
    spec = bench["STUDIES"][study]
    cmds = bench["stage_commands"](spec, ROOT / "dvc.yaml", Path("/scratch"))
    assert [c[1] for c in cmds] == [f"stages/{s}.py" for s in spec.stages]
    args = [a for c in cmds for a in c]
    assert "/scratch/evaluate" in args and "/scratch/train" in args
    assert not any(a.startswith(("artifacts/", "models/", "results/")) for a in args)


def test_an_unredirected_output_stops_the_run(bench, tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(
        "stages:\n  seg_prepare:\n    cmd: python stages/seg_prepare.py --out x.npz\n"
        "    outs: [x.npz]\n"
    )
    with pytest.raises(SystemExit, match="seg_prepare writes x.npz, which seeds.py would"):
        bench["stage_commands"](bench["STUDIES"]["seg"], dvc_yaml, tmp_path)
    with pytest.raises(SystemExit, match="no stage ner_generate"):
        bench["stage_commands"](bench["STUDIES"]["ner"], dvc_yaml, tmp_path)


def test_overrides(bench):
    params = {"base": {"seed": 42}, "seg": {"lr": 0.002, "lr_mult": {}}}
    got = bench["overridden"](params, ["seg.lr=0.001", "seg.lr_mult={encoder: 0.1}"], 7)
    assert got == {"base": {"seed": 7}, "seg": {"lr": 0.001, "lr_mult": {"encoder": 0.1}}}
    assert params["base"]["seed"] == 42  # the input is not changed
    with pytest.raises(SystemExit, match="seg.nope is not a key"):
        bench["overridden"](params, ["seg.nope=1"], 1)
    with pytest.raises(SystemExit, match="not section.key=value"):
        bench["overridden"](params, ["epochs=3"], 1)


def test_differences_and_summary_pair_by_seed(bench):
    def ner(f1):
        return {k: {"precision": f1, "recall": f1, "f1": f1} for k in ("generated", "fewnerd")}

    base = {1: ner(0.5), 2: ner(0.6)}
    other = {1: ner(0.55), 2: ner(0.58)}
    d = bench["differences"](base, other, "f1")["fewnerd"]
    assert d["per_seed"] == pytest.approx({1: 0.05, 2: -0.02})
    assert d["mean"] == pytest.approx(0.015) and d["same_sign"] is False
    s = bench["summary"](base)["fewnerd"]
    assert s["f1"]["mean"] == pytest.approx(0.55) and s["f1"]["sd"] == pytest.approx(0.0707, 1e-3)
    assert s["per_seed"][2] == {"precision": 0.6, "recall": 0.6, "f1": 0.6}
    # sets without the key metric (seg's "train") are not compared
    seg = {1: {"test": {"miou_5": 0.6}, "train": {"best_epoch": 3}}}
    seg2 = {1: {"test": {"miou_5": 0.65}, "train": {"best_epoch": 5}}}
    d = bench["differences"](seg, seg2, "miou_5")
    assert set(d) == {"test"} and d["test"]["mean"] == pytest.approx(0.05)
    assert d["test"]["same_sign"] is True


def _scores(miou, iou):
    return {"miou_5": miou, "miou_6": miou - 0.1, "pixel_accuracy": 0.8, "iou": iou}


def test_seg_scores_read_test_val_at_the_chosen_scales_and_training(bench, tmp_path):
    iou = {"building": 0.5, "unlabeled": 0.0}
    write_json(tmp_path / "evaluate" / "metrics.json", {"test": _scores(0.65, iou)})
    write_json(
        tmp_path / "evaluate" / "scale_sweep.json",
        {
            "tiles": [2, 6],
            "infer_scales": [0.5, 0.25],
            "scales": {
                "0.25": {"scales": [0.25], **_scores(0.54, iou)},
                "0.5": {"scales": [0.5], **_scores(0.57, iou)},
                "0.25+0.5": {"scales": [0.25, 0.5], **_scores(0.58, iou)},
            },
        },
    )
    write_json(tmp_path / "train" / "metrics.json", {"best_epoch": 7, "epochs_run": 10})
    got = bench["STUDIES"]["seg"].scores(tmp_path)
    assert got["test"]["miou_5"] == 0.65 and got["test"]["iou_building"] == 0.5
    assert got["val"]["miou_5"] == 0.58  # the entry of seg.infer_scales, whatever its order
    assert got["val"]["miou_5_at_0.25"] == 0.54 and got["val"]["miou_5_at_0.5"] == 0.57
    assert got["train"] == {"best_epoch": 7, "epochs_run": 10}


def test_a_finished_run_is_reused_only_with_the_same_params(bench, tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    script = (
        "import json, sys; from pathlib import Path; out = Path(sys.argv[1]); "
        "out.mkdir(exist_ok=True); calls = Path(sys.argv[2]); "
        "calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x'); "
        "(out / 'metrics.json').write_text(json.dumps({'m': 0.5}))"
    )
    cmd = f"python -c {shlex.quote(script)} results/toy {tmp_path / 'calls'}"
    stage = {"cmd": cmd, "outs": ["results/toy"]}
    dvc_yaml.write_text(yaml.safe_dump({"stages": {"toy": stage}}))
    study = bench["Study"](
        stages=("toy",),
        outputs={"results/toy": "toy"},
        scores=lambda run: {"set": bench["read_json"](run / "toy" / "metrics.json")},
        key="m",
        headline="set",
    )
    params = {"base": {"seed": 1}}
    run = tmp_path / "run"
    with open(tmp_path / "log.txt", "w") as log:
        first, _ = bench["run_chain"](study, params, run, log, dvc_yaml)
        again, _ = bench["run_chain"](study, params, run, log, dvc_yaml)
        assert first == again == {"set": {"m": 0.5}}
        assert (tmp_path / "calls").read_text() == "x"  # the second call reused the first
        bench["run_chain"](study, {"base": {"seed": 2}}, run, log, dvc_yaml)
        assert (tmp_path / "calls").read_text() == "xx"  # other params: run again
        (run / "done.json").unlink()  # an unfinished run is never reused
        bench["run_chain"](study, {"base": {"seed": 2}}, run, log, dvc_yaml)
        assert (tmp_path / "calls").read_text() == "xxx"


def test_folds_leave_each_tile_out_in_turn_with_one_seed(bench):
    seg, ner = bench["STUDIES"]["seg"], bench["STUDIES"]["ner"]
    reps = bench["replicates"](seg, [42], [1, 2, 3])
    assert [(r.label, r.seed, r.folder) for r in reps] == [
        (1, 42, "tile1"),
        (2, 42, "tile2"),
        (3, 42, "tile3"),
    ]
    assert reps[1].sets == ("seg.train_tiles=[1, 3]", "seg.val_tiles=[2]")
    params = {"base": {"seed": 1}, "seg": {"train_tiles": [1], "val_tiles": [2], "lr": 0.1}}
    got = bench["overridden"](params, ["seg.lr=0.2", *reps[1].sets], reps[1].seed)
    assert got["seg"] == {"train_tiles": [1, 3], "val_tiles": [2], "lr": 0.2}
    assert got["base"]["seed"] == 42
    seeds = bench["replicates"](seg, [1, 2], None)
    assert [(r.label, r.seed, r.sets, r.folder) for r in seeds] == [
        (1, 1, (), "1"),
        (2, 2, (), "2"),
    ]
    with pytest.raises(SystemExit, match="no tiles to leave out"):
        bench["replicates"](ner, [42], [1, 2])
    with pytest.raises(SystemExit, match="two or more tiles, each once"):
        bench["replicates"](seg, [42], [1, 1])


def test_folds_label_runs_per_fold_and_count_wins(bench):
    base = {t: {"val": {"miou_5": 0.5}} for t in (1, 2, 3)}
    other = {1: {"val": {"miou_5": 0.6}}, 2: {"val": {"miou_5": 0.4}}, 3: {"val": {"miou_5": 0.7}}}
    d = bench["differences"](base, other, "miou_5", "per_fold")["val"]
    assert d["per_fold"] == pytest.approx({1: 0.1, 2: -0.1, 3: 0.2}) and d["wins"] == 2
    assert "per_fold" in bench["summary"](base, "per_fold")["val"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--study", "ner", "--folds", "1", "2"], "no tiles to leave out"),
        (["--study", "seg", "--folds", "1", "2", "--seeds", "1", "2"], "one seed with --folds"),
        (
            ["--study", "seg", "--folds", "1", "2", "--variant", "v", "seg.val_tiles=[1]"],
            "sets the tiles that --folds sets",
        ),
    ],
)
def test_folds_bad_arguments_stop_before_any_run(bench, tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        bench["main"]([*argv, "--work", str(tmp_path / "w")])
    assert message in str(err.value) + capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_summary_leaves_out_a_class_absent_from_a_run(bench):
    runs = {1: {"val": {"iou_unlabeled": None, "miou_5": 0.5}},
            2: {"val": {"iou_unlabeled": 0.1, "miou_5": 0.7}},
            3: {"val": {"iou_unlabeled": 0.3, "miou_5": 0.6}}}  # fmt: skip
    s = bench["summary"](runs, "per_fold")["val"]
    assert s["iou_unlabeled"]["mean"] == pytest.approx(0.2) and s["miou_5"]["mean"] == 0.6
    assert s["per_fold"][1]["iou_unlabeled"] is None
    none = bench["summary"]({1: {"val": {"x": None}}})["val"]["x"]
    assert none == {"mean": None, "sd": None}


def _no_run(*args, **kwargs):
    raise AssertionError("a run started")


def _seg_tiles():
    seg = yaml.safe_load((ROOT / "params.yaml").read_text())["seg"]
    return seg["val_tiles"][0], seg["test_tiles"][0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variant", "a", "seg.lr="], "--variant a seg.lr=: seg.lr: expected float, got None"),
        (
            ["--variant", "a", "seg.lr=fast"],
            "--variant a seg.lr=fast: seg.lr: expected float, got str 'fast'",
        ),
        (
            ["--variant", "ok", "seg.lr=0.001", "--variant", "a", "seg.model=unet3"],
            "--variant a seg.model=unet3: seg: model: unknown seg model 'unet3'",
        ),
        (
            ["--variant", "a", "seg.epochs=0", "seg.lr=0.01"],
            "--variant a seg.epochs=0 seg.lr=0.01: seg: epochs: must be >= 1, got 0",
        ),
        (
            ["--variant", "a", f"seg.test_tiles=[{_seg_tiles()[0]}]"],
            f"--variant a seg.test_tiles=[{_seg_tiles()[0]}]: seg: train_tiles, val_tiles and "
            "test_tiles must not overlap",
        ),
        (
            ["--folds", "1", "3", "--variant", "v", "seg.lr=-1"],
            "--variant v seg.lr=-1 in fold 1 (seg.train_tiles=[3] seg.val_tiles=[1]): "
            "seg: lr: must be a finite number > 0, got -1.0",
        ),
        (
            ["--folds", "1", str(_seg_tiles()[1])],
            f"--folds: tile {_seg_tiles()[1]} is in seg.test_tiles of",
        ),
    ],
)
def test_bad_variants_stop_before_any_run(bench, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setitem(bench["main"].__globals__, "run_chain", _no_run)
    with pytest.raises(SystemExit) as err:
        bench["main"](["--study", "seg", *argv, "--work", str(tmp_path / "w")])
    assert message in str(err.value) + capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_bad_baseline_and_out_stop_before_any_run(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench["main"].__globals__, "run_chain", _no_run)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["seg"]["monitor"] = "val/mIoU"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    work = ["--work", str(tmp_path / "w")]
    with pytest.raises(SystemExit, match=f"^{bad}: seg: monitor: 'val/mIoU' is not a metric"):
        bench["main"](["--study", "seg", "--params", str(bad), *work])
    for out in (tmp_path, bad / "out.json"):
        with pytest.raises(SystemExit):
            bench["main"](["--study", "seg", "--out", str(out), *work])
        assert f"--out: {out}: " in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_valid_variants_run_and_the_temporary_work_folder_is_printed(
    bench, tmp_path, monkeypatch, capsys
):
    calls = []

    def fake_run(study, params, work, log, dvc_yaml=None):
        calls.append((work.relative_to(tmp_path).parts[1:], params["seg"]["lr"]))
        return {"test": {"miou_5": 0.5}}, 1.0

    monkeypatch.setitem(bench["main"].__globals__, "run_chain", fake_run)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "out.json"
    argv = ["--study", "seg", "--seeds", "1", "--variant", "small", "seg.lr=1e-3"]
    bench["main"]([*argv, "--out", str(out)])
    printed = capsys.readouterr().out.splitlines()[0]
    work = next(tmp_path.glob("seg_seeds_*"))
    assert printed == f"scratch folder {work}: rerun with --work {work} to reuse its finished runs"
    base_lr = yaml.safe_load((ROOT / "params.yaml").read_text())["seg"]["lr"]
    assert calls == [(("baseline", "1"), base_lr), (("small", "1"), "1e-3")]
    assert out.exists()
