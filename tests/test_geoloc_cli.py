"""``geolab geoloc predict`` on wrong inputs, with a tiny untrained checkpoint (fast).

The checkpoint is real (saved by :func:`geolab.common.train.save_checkpoint`, loaded by
:class:`~geolab.geoloc.predict.Geolocator`) but its network is timm's ``test_efficientnet``
with random weights: the positions are meaningless, only what the command does with its
inputs is tested here. ``test_geoloc_train`` drives the command with a trained model.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_geoloc_dataset import make_dataset, write_jpeg

from geolab.common.train import CHECKPOINT_FORMAT, CheckpointSpec, save_checkpoint
from geolab.geoloc.cli import main
from geolab.geoloc.geo import Normaliser, Projector
from geolab.geoloc.model import GeolocNet

TRAIN_MEAN = (44.9, 16.1)
KWARGS = {
    "num_cells": 3,
    "backbone": "test_efficientnet",
    "weights": "none",
    "hidden": 8,
    "dropout": 0.0,
}


def _save(path: Path, net: torch.nn.Module, kwargs: dict) -> Path:
    """A geoloc checkpoint of ``net``: three cells (Zagreb, Split, Osijek), 16 px views."""
    x, y = Projector().to_xy([45.815, 43.508, 45.554], [15.982, 16.440, 18.695])
    points = np.stack([x, y], 1).tolist()
    extra = {
        "points": {kind: points for kind in ("centroid", "clipped", "weighted")},
        "normaliser": Normaliser().fit(x, y).to_dict(),
        "centroid": "weighted",
        "image_size": 16,
        "predictor": "cells_weighted",
        "train_mean": list(TRAIN_MEAN),
    }
    save_checkpoint(CheckpointSpec(path, "geoloc_net", kwargs, extra=extra), net, 1, {})
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return _save(tmp_path_factory.mktemp("geoloc_cli") / "model.pt", GeolocNet(**KWARGS), KWARGS)


def predict(folder: Path, out: Path, model: Path, *options: str) -> int:
    return main(["predict", str(folder), "--out", str(out), "--model", str(model), *options])


def fails(*args, **kwargs) -> str:
    """The one-line message of a :func:`predict` that must fail."""
    with pytest.raises(SystemExit) as err:
        predict(*args, **kwargs)
    message = err.value.code
    assert isinstance(message, str) and "\n" not in message, message
    assert message.startswith("geolab geoloc predict: ")
    return message


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def uuid_only(root: Path, uuids: list[str], missing: dict[str, str] | None = None) -> Path:
    """A test set (``data.csv`` with just ``uuid``); ``missing`` maps a uuid to a photo to drop."""
    root = make_dataset(root, "uuid\n" + "".join(f"{u}\n" for u in uuids))
    for uuid, photo in (missing or {}).items():
        (root / "images" / uuid / photo).unlink()
    return root


# --------------------------------------------------------------------------- 1. coordinates


def test_coordinates_in_data_csv_are_ignored(model, tmp_path, capsys):
    # (0, 0) is outside Croatia, blank and "abc" are not numbers: none of it may matter
    text = "uuid,latitude,longitude\nzero,0,0\nblank,,\nword,abc,\nfar,41.9,12.5\n"
    with_coords = make_dataset(tmp_path / "coords", text)
    plain = uuid_only(tmp_path / "plain", ["zero", "blank", "word", "far"])
    for root in (with_coords, plain):  # the same photos in both
        for u in ("zero", "blank", "word", "far"):
            for k, path in enumerate(sorted((root / "images" / u).iterdir())):
                write_jpeg(path, colour=(len(u) * 30, 50 * k, 90))
    assert predict(with_coords, tmp_path / "a.csv", model) == 0
    err = capsys.readouterr().err
    assert "4 places located" in err and "skipped" not in err
    assert predict(plain, tmp_path / "b.csv", model) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    got = rows(tmp_path / "a.csv")
    assert [r[0] for r in got] == ["uuid", "zero", "blank", "word", "far"]
    assert all((float(r[1]), float(r[2])) != TRAIN_MEAN for r in got[1:])  # none filled


# --------------------------------------------------------------------------- 2. encoding


def test_latin1_data_csv_names_the_file_and_line(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a"])
    (root / "data.csv").write_bytes("uuid,note\na,café\n".encode("latin-1"))
    message = fails(root, tmp_path / "out.csv", model)
    assert f"{root / 'data.csv'}: line 2: byte 0xe9 is not UTF-8" in message
    assert "save the file as UTF-8" in message
    assert not (tmp_path / "out.csv").exists()


# --------------------------------------------------------------------------- 3. --out


def test_out_that_is_a_directory_fails_before_any_work(model, tmp_path):
    # the folder does not even exist: --out is checked first
    message = fails(tmp_path / "nowhere", tmp_path, model)
    assert f"{tmp_path}: is a directory" in message
    (tmp_path / "file").write_text("x")
    message = fails(tmp_path / "nowhere", tmp_path / "file" / "out.csv", model)
    assert "cannot create it" in message and str(tmp_path / "file") in message


# --------------------------------------------------------------------------- 4. --strict


def test_strict_with_a_skipped_place_writes_nothing(model, tmp_path, capsys):
    root = uuid_only(tmp_path / "ds", ["a", "b", "c"], missing={"b": "90.jpg"})
    out = tmp_path / "out.csv"
    assert predict(root, out, model, "--strict") == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert "--strict: 1 places skipped, nothing written to" in err and str(out) in err
    assert "b (data.csv line 3)" in err and "located" not in err
    out.write_text("an earlier submission\n")
    assert predict(root, out, model, "--strict") == 1
    assert out.read_text() == "an earlier submission\n"  # left as it was
    # without --strict: complete, the skipped place at the mean training position, status 0
    assert predict(root, out, model) == 0
    got = {r[0]: (float(r[1]), float(r[2])) for r in rows(out)[1:]}
    assert list(got) == ["a", "b", "c"] and got["b"] == pytest.approx(TRAIN_MEAN)
    # --strict with nothing skipped writes the submission
    out.unlink()
    full = uuid_only(tmp_path / "full", ["a", "b"])
    assert predict(full, out, model, "--strict") == 0
    assert [r[0] for r in rows(out)] == ["uuid", "a", "b"]


# --------------------------------------------------------------------------- 5. images/


def test_missing_images_folder_is_an_error(model, tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "data.csv").write_text("uuid\na\nb\n")
    message = fails(root, tmp_path / "out.csv", model)
    assert f"{root / 'images'}: folder not found" in message
    assert not (tmp_path / "out.csv").exists()
    (root / "images").write_text("not a folder")
    assert f"{root / 'images'}: folder not found" in fails(root, tmp_path / "out.csv", model)


# --------------------------------------------------------------------------- 6. + 7. skips


def _save_deep(path: Path, mode: str) -> None:
    """A 16-bit or float photo under a ``.jpg`` name (Pillow reads it by its content)."""
    if mode == "I;16":
        Image.new("I;16", (16, 16), 40000).save(path, format="PNG")
    else:
        Image.new("F", (16, 16), 0.25).save(path, format="TIFF")


def test_skipped_places_are_listed_with_photo_and_reason(model, tmp_path, capsys):
    uuids = ["ok", "gone", "junk", "deep", "float", "grey"]
    root = uuid_only(tmp_path / "ds", uuids, missing={"gone": "180.jpg"})
    images = root / "images"
    (images / "junk" / "0.jpg").write_bytes(b"this is not a jpeg")
    _save_deep(images / "deep" / "270.jpg", "I;16")
    _save_deep(images / "float" / "90.jpg", "F")
    Image.new("L", (16, 16), 90).save(images / "grey" / "0.jpg", format="JPEG")  # fine
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(images / "grey" / "90.jpg", format="PNG")
    Image.new("P", (16, 16), 7).save(images / "grey" / "180.jpg", format="PNG")
    out = tmp_path / "out.csv"
    assert predict(root, out, model) == 0
    err = capsys.readouterr().err
    assert "2 places located" in err and "see the report" not in err
    assert "4 places skipped (no usable photos; given the mean training position):" in err
    listed = [line[2:] for line in err.splitlines() if "(data.csv line" in line]
    assert [line.split(" ")[0] for line in listed] == ["gone", "junk", "deep", "float"]
    assert listed[0] == f"gone (data.csv line 3): {images / 'gone' / '180.jpg'}: missing"
    assert listed[1].startswith(f"junk (data.csv line 4): {images / 'junk' / '0.jpg'}: ")
    assert "UnidentifiedImageError" in listed[1]
    assert listed[2] == (
        f"deep (data.csv line 5): {images / 'deep' / '270.jpg'}: pixel format I;16 is not "
        "8 bits per channel (save the photo as 8-bit RGB)"
    )
    assert "90.jpg: pixel format F is not 8 bits per channel" in listed[3]
    got = {r[0]: (float(r[1]), float(r[2])) for r in rows(out)[1:]}
    assert [u for u in uuids if got[u] == pytest.approx(TRAIN_MEAN)] == uuids[1:5]


# --------------------------------------------------------------------------- 8. --batch-size


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_batch_size_must_be_a_positive_integer(model, tmp_path, capsys, value):
    root = uuid_only(tmp_path / "ds", ["a"])
    with pytest.raises(SystemExit) as err:
        predict(root, tmp_path / "out.csv", model, "--batch-size", value)
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "argument --batch-size:" in message
    assert (
        "is not an integer" if value == "two" else f"must be at least 1, got {value}"
    ) in message
    assert not (tmp_path / "out.csv").exists()


def test_batch_size_does_not_change_the_positions(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a", "b", "c"])
    assert predict(root, tmp_path / "one.csv", model, "--batch-size", "1") == 0
    assert predict(root, tmp_path / "all.csv", model, "--batch-size", "64") == 0
    one, whole = (
        np.array(rows(tmp_path / n)[1:])[:, 1:].astype(float) for n in ("one.csv", "all.csv")
    )
    np.testing.assert_allclose(one, whole, atol=1e-6)


# --------------------------------------------------------------------------- 9. one line


def test_a_file_that_is_not_a_checkpoint_is_one_line(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a"])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02 not a checkpoint at all" * 50)
    message = fails(root, tmp_path / "out.csv", garbage)
    assert f"{garbage}: not a geolab checkpoint" in message and len(message) < 260
    assert message.endswith(". ...")  # torch's long advice is cut after its first sentence
    assert not (tmp_path / "out.csv").exists()


def test_another_studys_checkpoint_is_one_line(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a"])
    other = tmp_path / "seg.pt"
    blob = {"format": CHECKPOINT_FORMAT, "model_name": "unet_pretrained", "model_kwargs": {},
            "state_dict": {}, "params": {}, "extra": {}, "epoch": 1, "metrics": {}}  # fmt: skip
    torch.save(blob, other)
    message = fails(root, tmp_path / "out.csv", other)
    assert f"{other}: a checkpoint of another model" in message and "unet_pretrained" in message


def test_weights_of_another_shape_are_one_line(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a"])
    wider = _save(tmp_path / "wider.pt", GeolocNet(**{**KWARGS, "hidden": 4}), KWARGS)
    message = fails(root, tmp_path / "out.csv", wider)
    assert f"{wider}: Error(s) in loading state_dict for GeolocNet: size mismatch" in message


def test_other_wrong_inputs_are_one_line(model, tmp_path):
    root = uuid_only(tmp_path / "ds", ["a"])
    out = tmp_path / "out.csv"
    assert "data.csv: not found" in fails(tmp_path / "nowhere", out, model)
    assert "no trained model" in fails(root, out, tmp_path / "none.pt")
    assert "unknown predictor 'nope'" in fails(root, out, model, "--predictor", "nope")
    assert "--device 'toaster': not a device" in fails(root, out, model, "--device", "toaster")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in fails(root, out, model, "--device", "cuda")
    (root / "data.csv").write_text("uuid\na\na\n")
    assert "duplicate uuid" in fails(root, out, model)
    (root / "data.csv").write_text("id\na\n")
    assert "missing column(s) ['uuid']" in fails(root, out, model)
    assert not out.exists()
