"""Presets laid over params.yaml: validation, `dvc exp run -S` arguments, in-place apply."""

import shutil
from pathlib import Path

import pytest
import yaml

from geolab.common import presets
from geolab.common.params import ParamsError, load_params, params_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def _preset(tmp_path, data) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_presets_are_valid():
    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        assert presets.load(ROOT / "params.yaml", preset), preset


def test_bad_key_names_the_preset(tmp_path, params_file):
    bad = _preset(tmp_path, {"seg": {"epochz": 3}})
    with pytest.raises(ParamsError, match=r"preset\.yaml: seg\.epochz: unknown key"):
        presets.load(params_file, bad)
    with pytest.raises(ParamsError, match="preset.yaml: .*nope"):
        presets.load(params_file, _preset(tmp_path, {"nope": {"a": 1}}))


def test_wrong_type_names_the_preset(tmp_path, params_file):
    with pytest.raises(ParamsError, match=r"seg\.epochs"):
        presets.load(params_file, _preset(tmp_path, {"seg": {"epochs": "many"}}))


def test_set_args_round_trip_through_dvc(tmp_path, params_file):
    """What --set-args prints is read back by DVC's own -S parser as the same values."""
    from dvc.utils.hydra import apply_overrides

    data = yaml.safe_load(params_file.read_text())
    data["seg"]["model_kwargs"] = {"width": 8}  # must be replaced, not merged into
    params_file.write_text(yaml.safe_dump(data, sort_keys=False))
    values = {
        "epochs": 7,
        "lr": 0.0005,
        "scheduler": "onecycle",
        "train_tiles": [1, 3, 4],
        "loss": ["ce", "focal"],
        "model_kwargs": {"encoder": "efficientnet_lite0", "weights": "none"},
        "amp": False,
        "model": "unet",
    }
    preset = presets.load(params_file, _preset(tmp_path, {"seg": values}))
    args = presets.set_args(preset)
    assert args[0] == "-S" and len(args) == 2 * (len(values) + 1)
    apply_overrides(params_file, args[1::2])
    seg = yaml.safe_load(params_file.read_text())["seg"]
    assert {k: seg[k] for k in values} == values


def test_hydra_value_quotes_what_would_be_misread():
    assert presets.hydra_value("true") == "'true'"
    assert presets.hydra_value("a'b") == "'a\\'b'"
    assert presets.hydra_value(None) == "null"
    with pytest.raises(ParamsError, match="spaces"):
        presets.set_args({"seg": {"model": "a b"}})


def test_apply_keeps_comments_and_validates(tmp_path, params_file, capsys):
    preset = _preset(tmp_path, {"seg": {"epochs": 11, "scale": 0.5}})
    before = params_file.read_text()
    assert params_main(["--params", str(params_file), "--preset", str(preset), "--apply"]) == 0
    after = params_file.read_text()
    assert "# image/mask patches of the Dubai tiles" in after
    seg = load_params(params_file)["seg"]
    assert (seg.epochs, seg.scale) == (11, 0.5)
    assert len(after.splitlines()) == len(before.splitlines())
    changed = [b for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert [line.split("#")[0].strip() for line in changed] == ["scale: 0.5", "epochs: 11"]
    bad = _preset(tmp_path, {"seg": {"scale": 3.0}})
    assert params_main(["--params", str(params_file), "--preset", str(bad), "--apply"]) == 1
    assert "scale must be in (0, 1]" in capsys.readouterr().err
    assert load_params(params_file)["seg"].scale == 0.5


def test_cli_set_args_and_print(tmp_path, params_file, capsys):
    preset = _preset(tmp_path, {"seg": {"epochs": 9}})
    assert params_main(["--params", str(params_file), "--preset", str(preset), "--set-args"]) == 0
    assert capsys.readouterr().out.strip() == "-S seg.epochs=9"
    assert (
        params_main(["--params", str(params_file), "--preset", str(preset), "--section", "seg"])
        == 0
    )
    assert "epochs: 9" in capsys.readouterr().out
    assert params_file.read_text() == (ROOT / "params.yaml").read_text()


def test_empty_preset_is_an_error(tmp_path, params_file, capsys):
    for text in ["", "# nothing yet\n", "seg: {}\n"]:
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        assert (
            params_main(["--params", str(params_file), "--preset", str(empty), "--set-args"]) == 1
        )
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == f"error: {empty}: preset sets nothing (no section with a key)\n"


def test_apply_to_an_empty_params_file(tmp_path, capsys):
    preset = _preset(tmp_path, {"seg": {"epochs": 3}})
    for text in ["", "# comments only\n"]:
        params = tmp_path / "params.yaml"
        params.write_text(text)
        assert params_main(["--params", str(params), "--preset", str(preset), "--apply"]) == 1
        assert capsys.readouterr().err.startswith(f"error: {params}: sections 'gate', 'cls'")
        assert params.read_text() == text
        with pytest.raises(ParamsError, match=r"params\.yaml: no sections to apply the preset to"):
            presets.apply(params, {"seg": {"epochs": 3}})
    params.write_text("seg: 3\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: seg: expected a mapping, got 3"):
        presets.apply(params, {"seg": {"epochs": 3}})


def test_the_whole_merged_file_is_validated(tmp_path, params_file, capsys):
    """A bad value the preset does not touch stops --set-args and --apply, naming params.yaml."""
    preset = _preset(tmp_path, {"seg": {"epochs": 3}})
    good = params_file.read_text()
    params_file.write_text(good.replace("  device: auto", "  device: gpu", 1))
    before = params_file.read_text()
    for how in ["--set-args", "--apply", "--section"]:
        argv = ["--params", str(params_file), "--preset", str(preset), how]
        assert params_main([*argv, "seg"] if how == "--section" else argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"error: {params_file}: base.device: expected one of")
    assert params_file.read_text() == before
    # an unknown section of the params file is named with the file in print mode too
    params_file.write_text(good + "segg:\n  epochs: 1\n")
    assert params_main(["--params", str(params_file), "--preset", str(preset)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {params_file}: unknown section 'segg'")
    # a params section the preset lays over must be a mapping (was a TypeError)
    params_file.write_text(good.replace("\nseg:\n", "\nseg: [1]\nold_seg:\n", 1))
    with pytest.raises(ParamsError, match=r"^.*params\.yaml: seg: expected a mapping, got list"):
        presets.load(params_file, preset)
    # a value the preset fixes is fine: only the merged result counts
    seg = good.index("\nseg:\n")
    params_file.write_text(good[:seg] + good[seg:].replace("  epochs: 12", "  epochs: many", 1))
    assert presets.load(params_file, preset) == {"seg": {"epochs": 3}}
