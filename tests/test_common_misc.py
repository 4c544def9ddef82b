"""Small shared helpers: atomic I/O, confusion-matrix metrics, registries, seeding, dvclive."""

from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest
import torch

from geolab.common import runtime
from geolab.common.io import (
    OutputPathError,
    atomic_open,
    atomic_save_torch,
    check_output_path,
    read_json,
    write_json,
    write_yaml,
)
from geolab.common.live import log_metrics
from geolab.common.metrics import confusion_matrix, scores_from_confusion
from geolab.common.params import BaseParams, read_yaml
from geolab.common.registry import Registry

torch.set_num_threads(1)


# --- io -------------------------------------------------------------------------------------------


def test_atomic_open_keeps_original_when_block_raises(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("original", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path) as fh:
        fh.write("half-written")
        raise RuntimeError("boom")
    assert path.read_text(encoding="utf-8") == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left


def test_atomic_open_no_file_when_block_raises(tmp_path):
    path = tmp_path / "sub" / "new.bin"
    with pytest.raises(KeyboardInterrupt), atomic_open(path, "wb") as fh:
        fh.write(b"x")
        raise KeyboardInterrupt
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_atomic_open_replaces_on_success(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"  # parents are created
    with atomic_open(path) as fh:
        fh.write("héllo")
        assert not path.exists()  # nothing visible until the block ends
    assert path.read_text(encoding="utf-8") == "héllo"
    with atomic_open(path, "wb") as fh:
        fh.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_write_read_json_roundtrip(tmp_path):
    data = {"b": [1, 2.5, None], "a": {"x": "y", "ü": True}}
    path = tmp_path / "m.json"
    write_json(path, data)
    assert read_json(path) == data
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["b", "a"]  # key order kept


def test_read_json_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": oops\n}\n', encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}: line 3: not valid JSON")
    with pytest.raises(FileNotFoundError, match="missing.json: file not found"):
        read_json(tmp_path / "missing.json")


def test_write_yaml_and_torch(tmp_path):
    write_yaml(tmp_path / "p.yaml", {"z": 1, "a": [1e-3]})
    assert read_yaml(tmp_path / "p.yaml") == {"z": 1, "a": [1e-3]}
    atomic_save_torch({"w": torch.arange(3)}, tmp_path / "w.pt")
    loaded = torch.load(tmp_path / "w.pt", weights_only=True)
    assert torch.equal(loaded["w"], torch.arange(3))


# --- metrics --------------------------------------------------------------------------------------

# 4 classes: 0 and 1 are mixed up, 2 is never predicted, 3 is absent from labels and predictions.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 0])
Y_PRED = np.array([0, 1, 1, 0, 1, 1, 0])
CM = np.array(
    [
        [2, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 2, 0, 0],
        [0, 0, 0, 0],
    ]
)
CLASSES = ["a", "b", "c", "d"]


def test_confusion_matrix_hand_computed():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert cm.dtype == np.int64 and cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, CM)
    # any shape: only the pairs matter
    np.testing.assert_array_equal(
        confusion_matrix(np.append(Y_TRUE, 3).reshape(2, 4), np.append(Y_PRED, 3).reshape(2, 4), 4),
        CM + np.diag([0, 0, 0, 1]),
    )


def test_confusion_matrix_ignore_index():
    y_true = np.concatenate([Y_TRUE, [255, 255, 255]])
    y_pred = np.concatenate([Y_PRED, [3, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4, ignore_index=255), CM)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        confusion_matrix(y_true, y_pred, 4)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="y_true has 3 entries but y_pred has 4"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        confusion_matrix(np.array([-1, 1]), np.array([0, 1]), 2)
    assert confusion_matrix(np.array([], int), np.array([], int), 2).sum() == 0


def test_scores_from_confusion_hand_computed():
    scores = scores_from_confusion(CM, CLASSES)
    assert scores["accuracy"] == pytest.approx(3 / 7)
    per = scores["per_class"]
    assert per["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "iou": 2 / 4}
    )
    assert per["b"] == pytest.approx(
        {"precision": 1 / 4, "recall": 1 / 2, "f1": 1 / 3, "iou": 1 / 5}
    )
    # never predicted but present: zeros, not NaN
    assert per["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    # absent from both: NaN, left out of the macro means
    assert all(math.isnan(v) for v in per["d"].values())
    assert scores["macro"] == pytest.approx(
        {
            "precision": (2 / 3 + 1 / 4 + 0) / 3,
            "recall": (2 / 3 + 1 / 2 + 0) / 3,
            "f1": (2 / 3 + 1 / 3 + 0) / 3,
            "iou": (1 / 2 + 1 / 5 + 0) / 3,
        }
    )


def test_scores_from_confusion_edge_cases():
    perfect = scores_from_confusion(np.diag([3, 2]), ["x", "y"])
    assert perfect["accuracy"] == 1.0
    assert perfect["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0}
    # predicted but never true: precision 0 and recall 0 (not NaN)
    s = scores_from_confusion(np.array([[1, 1], [0, 0]]), ["x", "y"])
    assert s["per_class"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "iou": 0.0}
    assert s["per_class"]["x"]["precision"] == 1.0 and s["per_class"]["x"]["recall"] == 0.5
    empty = scores_from_confusion(np.zeros((2, 2)), ["x", "y"])
    assert math.isnan(empty["accuracy"])
    assert all(math.isnan(v) for v in empty["macro"].values())


# --- registry -------------------------------------------------------------------------------------


def make_registry() -> Registry:
    reg: Registry = Registry("toy model")

    @reg.register("small")
    def small(width: int = 4, depth: int = 1):
        return ("small", width, depth)

    @reg.register("any")
    def anything(**kwargs):
        return kwargs

    return reg


def test_registry_build_and_names():
    reg = make_registry()
    assert reg.build("small", width=8) == ("small", 8, 1)
    assert reg.build("any", a=1) == {"a": 1}  # **kwargs factories take anything
    assert reg.names() == ["any", "small"] == list(reg)
    assert "small" in reg and "big" not in reg
    assert reg.get("small")() == ("small", 4, 1)


def test_registry_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="unknown toy model 'big'; valid names: any, small"):
        make_registry().build("big")
    with pytest.raises(KeyError, match=r"\(none registered\)"):
        Registry("matcher").get("x")


def test_registry_duplicate_registration():
    reg = make_registry()
    with pytest.raises(ValueError, match="toy model 'small' is registered twice"):
        reg.register("small")(lambda: None)


def test_registry_unexpected_kwarg_lists_accepted():
    with pytest.raises(TypeError, match="toy model 'small' takes no argument 'hieght'") as info:
        make_registry().build("small", width=2, hieght=3)
    assert str(info.value).endswith("it takes: width, depth")


# --- runtime --------------------------------------------------------------------------------------


def draw() -> tuple:
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])


def test_seed_everything_repeatable(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    runtime.seed_everything(7, deterministic=False)
    first = draw()
    runtime.seed_everything(7, deterministic=False)
    assert draw() == first
    runtime.seed_everything(8, deterministic=False)
    assert draw() != first
    assert os.environ["PYTHONHASHSEED"] == "8"
    runtime.seed_everything(2**40, deterministic=False)  # NumPy needs a seed < 2**32


def test_seed_everything_deterministic(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        runtime.seed_everything(1, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


def test_resolve_device(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="'cuda' but CUDA is not available"):
        runtime.resolve_device("cuda")


def test_setup_applies_base(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    try:
        device = runtime.setup(BaseParams(seed=3, threads=2, deterministic=False))
        assert device == torch.device("cpu")
        assert torch.get_num_threads() == 2
        first = draw()
        runtime.setup(BaseParams(seed=3, threads=0, deterministic=False))
        assert draw() == first
        assert torch.get_num_threads() == 2  # threads=0 keeps the current setting
    finally:
        torch.set_num_threads(threads)


# --- live -----------------------------------------------------------------------------------------


class FakeLive:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, bool]] = []

    def log_metric(self, name, value, plot=True):
        self.calls.append((name, value, plot))


def test_log_metrics_flattens_nested_dicts():
    live = FakeLive()
    metrics = {
        "loss": 0.25,
        "f1": {"macro": np.float32(0.5), "per_class": {"water": 1}},
        "skipped": None,
    }
    log_metrics(live, metrics, prefix="val")
    assert live.calls == [
        ("val/loss", 0.25, True),
        ("val/f1/macro", 0.5, True),
        ("val/f1/per_class/water", 1.0, True),
    ]
    assert all(type(v) is float for _, v, _ in live.calls)

    live = FakeLive()
    log_metrics(live, {"test": {"accuracy": 0.9}, "n": 3}, plot=False)
    assert live.calls == [("test/accuracy", 0.9, False), ("n", 3.0, False)]


def test_read_series_and_training_curves(tmp_path):
    import matplotlib.pyplot as plt

    from geolab.common.figures import read_series, training_curves

    path = tmp_path / "plots/metrics/val/miou.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("step\tmiou\n0\t0.25\n1\t0.5\n")
    assert read_series(tmp_path, "val/miou") == ([0, 1], [0.25, 0.5])
    fig = training_curves(tmp_path, [["val/miou"]])
    assert [t.get_text() for t in fig.axes[0].texts] == ["best 0.500"]
    plt.close(fig)
    with pytest.raises(FileNotFoundError, match="val/loss"):
        read_series(tmp_path, "val/loss")
    path.write_text("step\tmiou\n0\toops\n")
    with pytest.raises(ValueError, match=r"miou.tsv:2"):
        read_series(tmp_path, "val/miou")


def test_output_path_that_cannot_be_a_file_is_named_before_writing(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    cases = {tmp_path: "is a directory", tmp_path / "notes.txt" / "a" / "b.json": "is a file"}
    for path, why in cases.items():
        with pytest.raises(OutputPathError, match=why):
            check_output_path(path)
        with pytest.raises(OutputPathError, match=str(path)), atomic_open(path) as fh:
            fh.write("never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no temporary left
    assert check_output_path(tmp_path / "new" / "dir" / "x.json") == tmp_path / "new/dir/x.json"
    assert check_output_path(tmp_path / "notes.txt") == tmp_path / "notes.txt"  # overwritable


def test_positive_int_is_an_argparse_type():
    import argparse

    from geolab.cli import positive_int

    assert positive_int("3") == 3
    for text in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(text)
