"""Strict params.yaml loading: unknown keys/sections, types, YAML 1.2 floats, nested schemas."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from geolab.cls.config import ClsParams
from geolab.common.params import (
    SECTIONS,
    BaseParams,
    GatedMetric,
    GateParams,
    ParamsError,
    from_dict,
    load_params,
    load_section,
    params_main,
    read_yaml,
    to_dict,
)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ParamsError) as info:
        load_params(path)
    return str(info.value)


# --- unknown keys and sections ------------------------------------------------------------------


def test_unknown_key_names_file_dotted_key_and_valid_keys(tmp_path):
    path = write(tmp_path, "base:\n  seed: 1\n  sede: 2\n")
    msg = load_error(path)
    assert msg.startswith(f"{path}: base.sede: unknown key")
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(BaseParams)))
    assert msg.endswith(f"valid keys: {valid}")


def test_unknown_key_in_study_section(tmp_path):
    path = write(tmp_path, "cls:\n  lrr: 0.1\n")
    msg = load_error(path)
    assert f"{path}: cls.lrr: unknown key" in msg
    assert "lr" in msg.split("valid keys:")[1].split(", ")


def test_unknown_section_lists_valid_sections(tmp_path):
    path = write(tmp_path, "base: {}\ndetect:\n  lr: 0.1\n")
    msg = load_error(path)
    assert str(path) in msg
    assert "unknown section 'detect'" in msg
    assert msg.endswith("valid sections: " + ", ".join(sorted(SECTIONS)))
    assert "base, cls, gate" in msg


def test_load_section_missing_section(tmp_path):
    path = write(tmp_path, "base: {}\n")
    with pytest.raises(ParamsError, match="section 'cls' is missing"):
        load_section("cls", path)
    # base has defaults for everything, so an absent base section is fine
    assert load_section("base", path) == BaseParams()


# --- types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ("lr: fast", "cls.lr", "expected float, got str 'fast'"),
        ("epochs: 2.5", "cls.epochs", "expected int, got float 2.5"),
        ("epochs: true", "cls.epochs", "expected int, got bool True"),
        ("model: [a, b]", "cls.model", "expected str, got list ['a', 'b']"),
        ("amp: 1", "cls.amp", "expected bool, got int 1"),
        ("train_tiles: 3", "cls.train_tiles", "expected a list, got int 3"),
        ("train_tiles: [1, x]", "cls.train_tiles[1]", "expected int, got str 'x'"),
        ("model_kwargs: [1]", "cls.model_kwargs", "expected a mapping, got list"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, line, key, expected):
    path = write(tmp_path, f"cls:\n  {line}\n")
    msg = load_error(path)
    assert msg.startswith(f"{path}: {key}: ")
    assert expected in msg


def test_int_accepted_for_float(tmp_path):
    path = write(tmp_path, "cls:\n  lr: 1\n  purity: 1\n")
    cls = load_section("cls", path)
    assert cls.lr == 1.0 and type(cls.lr) is float
    assert type(cls.purity) is float


def test_yaml12_floats(tmp_path):
    path = write(
        tmp_path,
        "a: 1e-3\nb: -2.5E+4\nc: 1e3x\nd: 1e3\ne: 3\nf: '1e-3'\ng: 1.5\nh: .inf\ni: 1.5e3\n",
    )
    data = read_yaml(path)
    assert data["a"] == 0.001 and type(data["a"]) is float
    assert data["b"] == -25000.0 and type(data["b"]) is float
    assert data["c"] == "1e3x"
    assert data["d"] == 1000.0 and type(data["d"]) is float
    assert data["e"] == 3 and type(data["e"]) is int
    assert data["f"] == "1e-3"  # quoted stays a string
    assert data["g"] == 1.5
    assert data["h"] == float("inf")
    assert data["i"] == 1500.0 and type(data["i"]) is float
    # plain PyYAML (YAML 1.1) would have read 1e-3 as a string
    assert yaml.safe_load("a: 1e-3")["a"] == "1e-3"


def test_dvc_exp_run_style_float_loads_into_schema(tmp_path):
    # what `dvc exp run -S cls.lr=1e-3` writes
    path = write(tmp_path, "cls:\n  lr: 1e-3\n  weight_decay: +2.5E+4\n")
    cls = load_section("cls", path)
    assert cls.lr == pytest.approx(1e-3)
    assert cls.weight_decay == 25000.0


def test_string_that_looks_numeric_is_rejected_for_float(tmp_path):
    path = write(tmp_path, "cls:\n  lr: 1e3x\n")
    assert "cls.lr: expected float, got str '1e3x'" in load_error(path)


def test_literal_lists_allowed_values(tmp_path):
    path = write(tmp_path, "cls:\n  optimizer: rmsprop\n")
    msg = load_error(path)
    assert f"{path}: cls.optimizer: expected one of ['adamw', 'adam', 'sgd'], got 'rmsprop'" == msg


def test_literal_does_not_accept_equal_value_of_other_type(tmp_path):
    # 1 == True, but a bool Literal must not accept an int (and vice versa for str literals)
    path = write(tmp_path, "base:\n  device: 1\n")
    assert "base.device: expected one of ['auto', 'cpu', 'cuda'], got 1" in load_error(path)


def test_optional_float(tmp_path):
    path = write(
        tmp_path,
        "gate:\n  metrics:\n    - {file: m.json, key: a, direction: max, floor: null,"
        " tolerance: 1}\n",
    )
    gate = load_section("gate", path)
    assert gate.metrics[0].floor is None
    assert gate.metrics[0].tolerance == 1.0 and type(gate.metrics[0].tolerance) is float
    bad = write(
        tmp_path, "gate:\n  metrics:\n    - {file: m.json, key: a, direction: max, floor: x}\n"
    )
    assert "gate.metrics[0].floor: expected float, got str 'x'" in load_error(bad)


# --- nested dataclasses ---------------------------------------------------------------------------

GATE = """\
gate:
  rev: main
  metrics:
    - file: results/a.json
      key: test/accuracy
      direction: max
      floor: 0.5
    - file: results/a.json
      key: test/loss
      direction: {direction}
"""


def test_nested_list_of_dataclasses(tmp_path):
    gate = load_section("gate", write(tmp_path, GATE.format(direction="min")))
    assert isinstance(gate, GateParams)
    assert gate.rev == "main"
    assert gate.metrics == [
        GatedMetric("results/a.json", "test/accuracy", "max", floor=0.5),
        GatedMetric("results/a.json", "test/loss", "min"),
    ]


def test_nested_error_names_item_index(tmp_path):
    path = write(tmp_path, GATE.format(direction="down"))
    msg = load_error(path)
    assert msg == (f"{path}: gate.metrics[1].direction: expected one of ['max', 'min'], got 'down'")


def test_nested_item_not_a_mapping(tmp_path):
    path = write(tmp_path, "gate:\n  metrics:\n    - just a string\n")
    assert "gate.metrics[0]: expected a mapping, got str" in load_error(path)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, "gate:\n  metrics:\n    - {file: a.json, direction: max}\n")
    assert load_error(path) == f"{path}: gate.metrics[0].key: required key is missing"


def test_validate_hook_error_is_wrapped(tmp_path):
    path = write(tmp_path, "cls:\n  train_tiles: [1, 2]\n  val_tiles: [2]\n  test_tiles: [8]\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(info.value) == (
        f"{path}: cls: train_tiles, val_tiles and test_tiles must not overlap"
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_nested_validate_hook_error_names_item(tmp_path):
    path = write(
        tmp_path, "gate:\n  metrics:\n    - {file: a.json, key: k, direction: max, tolerance: -1}\n"
    )
    assert "gate.metrics[0]: tolerance: must be a finite number >= 0" in load_error(path)


def test_from_dict_direct():
    cls = from_dict(ClsParams, {"lr": 2, "model_kwargs": {"width": 4}}, "here: cls")
    assert cls.lr == 2.0 and cls.model_kwargs == {"width": 4}
    assert cls.epochs == ClsParams().epochs
    with pytest.raises(ParamsError, match=r"^here: cls: expected a mapping, got list"):
        from_dict(ClsParams, [1], "here: cls")


# --- file-level problems --------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    assert read_yaml(path) == {}
    assert load_params(path) == {"base": BaseParams()}


def test_empty_section_uses_defaults(tmp_path):
    params = load_params(write(tmp_path, "base:\ncls:\n"))
    assert params["base"] == BaseParams()
    assert params["cls"] == ClsParams()


@pytest.mark.parametrize("value", ["false", "0", "[]", "''", "3"])
def test_non_mapping_section(tmp_path, value):
    # a falsy non-mapping must not be silently read as "all defaults"
    path = write(tmp_path, f"cls: {value}\n")
    assert f"{path}: cls: expected a mapping, got" in load_error(path)
    with pytest.raises(ParamsError, match="cls: expected a mapping"):
        load_section("cls", path)


def test_non_mapping_top_level(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    msg = load_error(path)
    assert msg == f"{path}: expected a mapping at the top level, got list"


def test_invalid_yaml_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "cls:\n  lr: [1, 2\n")
    msg = load_error(path)
    assert msg.startswith(f"{path}: line 3, column 1: not valid YAML: expected ',' or ']'")
    assert msg.endswith("(while parsing a flow sequence that starts on line 2)")
    assert "<unicode string>" not in msg
    path = write(tmp_path, "base:\n  seed: 1\n bad: [1\n  threads: 2\n")  # mis-indented
    assert load_error(path).startswith(f"{path}: line 3, column 2: not valid YAML: ")
    path = write(tmp_path, "cls:\n  model: a\x00\n")
    assert load_error(path).startswith(f"{path}: line 2, column 11: not valid YAML: unacceptable")


def test_unreadable_file_is_a_params_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"cls:\n  model: caf\xe9\n")
    assert load_error(path) == f"{path}: not UTF-8 text (invalid continuation byte at byte 17)"
    assert load_error(tmp_path) == f"{tmp_path}: is a directory, not a params file"


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    path = write(tmp_path, "base:\n  seed: 1\ncls:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    assert load_error(path) == f"{path}: line 6, column 3: duplicate key 'lr' (first on line 4)"
    path = write(tmp_path, "cls: {}\nbase: {}\ncls: {}\n")
    assert load_error(path) == f"{path}: line 3, column 1: duplicate key 'cls' (first on line 1)"
    path = write(tmp_path, "gate:\n  metrics: [{file: a, file: b, key: k, direction: max}]\n")
    assert "line 2, column 23: duplicate key 'file' (first on line 2)" in load_error(path)
    # the same key in different mappings, and YAML merge keys, are fine
    path = write(tmp_path, "a: &a {x: 1}\nb: {x: 1}\nc:\n  <<: *a\n  x: 2\n")
    assert read_yaml(path) == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 2}}


def test_project_files_read_as_before():
    """The stricter loader reads the project's own params and presets exactly as before."""
    from geolab.common.params import _Yaml12Loader

    for path in [ROOT / "params.yaml", *sorted((ROOT / "presets").glob("*.yaml"))]:
        old = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506
        assert read_yaml(path) == old, path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert load_error(path) == f"{path}: file not found"


def test_real_params_file_loads():
    params = load_params(ROOT / "params.yaml")
    assert {"base", "cls", "gate"} <= set(params)
    assert isinstance(params["base"], BaseParams)
    assert isinstance(params["cls"], ClsParams)
    assert isinstance(params["gate"], GateParams)
    assert all(isinstance(m, GatedMetric) for m in params["gate"].metrics)
    # round trip: to_dict output validates again
    again = {k: from_dict(type(v), to_dict(v), k) for k, v in params.items()}
    assert again == params


# --- CLI and helpers ------------------------------------------------------------------------------


def test_params_main_bad_file(tmp_path, capsys):
    path = write(tmp_path, "cls:\n  lr: fast\n")
    assert params_main(["--params", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"error: {path}: cls.lr: expected float, got str 'fast'"


def test_params_main_good_file(tmp_path, capsys):
    full = "".join(f"{s}:\n" for s in SECTIONS if s not in ("base", "cls"))
    path = write(tmp_path, "base:\n  seed: 7\ncls:\n  lr: 1e-3\n" + full)
    assert params_main(["--params", str(path)]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["base"]["seed"] == 7
    assert out["cls"]["lr"] == pytest.approx(1e-3)

    assert params_main(["--params", str(path), "--section", "base"]) == 0
    assert set(yaml.safe_load(capsys.readouterr().out)) == {"base"}


def test_params_main_needs_the_sections_the_stages_need(tmp_path, capsys):
    """An incomplete file fails here as it would fail a stage, not only later in `dvc repro`."""
    path = write(tmp_path, "base:\n  seed: 7\ncls:\n  lr: 1e-3\n")
    assert params_main(["--params", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err
        == f"error: {path}: sections 'gate', 'ner', 'seg', 'match', 'geoloc' are missing\n"
    )
    # --section needs only that section, as the stages of one study do
    assert params_main(["--params", str(path), "--section", "cls"]) == 0
    assert set(yaml.safe_load(capsys.readouterr().out)) == {"cls"}
    assert params_main(["--params", str(path), "--section", "gate"]) == 1
    assert capsys.readouterr().err == f"error: {path}: section 'gate' is missing\n"
    empty = write(tmp_path, "# only a comment\n", "empty.yaml")
    assert params_main(["--params", str(empty)]) == 1
    assert "are missing" in capsys.readouterr().err
    assert params_main(["--params", str(empty), "--section", "seg"]) == 1
    assert capsys.readouterr().err == f"error: {empty}: section 'seg' is missing\n"
    assert params_main(["--params", str(empty), "--section", "base"]) == 0
    assert params_main(["--params", str(empty), "--section", "nope"]) == 1
    assert "--section: unknown section 'nope'; valid sections: base" in capsys.readouterr().err


def test_params_main_unreadable_file_is_one_line(tmp_path, capsys):
    assert params_main(["--params", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path}: is a directory, not a params file\n"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    assert params_main(["--params", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {bad}: not UTF-8 text")


def test_params_main_real_file(capsys):
    assert params_main(["--params", str(ROOT / "params.yaml")]) == 0
    assert {"base", "cls", "gate"} <= set(yaml.safe_load(capsys.readouterr().out))
