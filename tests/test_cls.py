"""The cls study and the Dubai reader: unit tests and a smoke run of its three stages."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from conftest import params_error
from PIL import Image

from geolab.cls.data import cut_patches, patch_label
from geolab.cls.models import MODELS
from geolab.common.params import ParamsError, load_section
from geolab.common.train import load_checkpoint
from geolab.datasets import dubai

BUILDING, LAND, WATER = dubai.COLOURS["building"], dubai.COLOURS["land"], dubai.COLOURS["water"]


def _write_tile(root, tile, n=1, size=96, palette=False, colours=(BUILDING, LAND, WATER)):
    """A tile whose masks are three vertical bands; the image's colour follows the mask."""
    (root / f"tile_{tile}" / "images").mkdir(parents=True)
    (root / f"tile_{tile}" / "masks").mkdir(parents=True)
    for k in range(n):
        mask = np.zeros((size, size, 3), np.uint8)
        image = np.zeros((size, size, 3), np.uint8)
        for b, colour in enumerate(colours):
            sl = slice(b * size // 3, (b + 1) * size // 3)
            mask[:, sl] = colour
            image[:, sl] = (60 * b + 40, 200 - 60 * b, 90)
        name = f"image_part_{k + 1:03d}"
        Image.fromarray(image).save(root / f"tile_{tile}" / "images" / f"{name}.jpg", quality=95)
        m = Image.fromarray(mask)
        if palette:
            m = m.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        m.save(root / f"tile_{tile}" / "masks" / f"{name}.png")


def test_read_mask_rgb_and_palette_and_unknown_colours(tmp_path):
    _write_tile(tmp_path, 1, palette=False)
    _write_tile(tmp_path, 2, palette=True)
    rgb = dubai.read_mask(tmp_path / "tile_1/masks/image_part_001.png")
    pal = dubai.read_mask(tmp_path / "tile_2/masks/image_part_001.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (96, 96)
    np.testing.assert_array_equal(rgb, pal)
    assert rgb[0, 0] == 0 and rgb[0, 40] == 1 and rgb[0, 90] == 4
    odd = np.array([[[0, 0, 0], list(BUILDING)], [[1, 2, 3], list(LAND)]], np.uint8)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    counts = Counter()
    ids = dubai.read_mask(tmp_path / "odd.png", counts)
    np.testing.assert_array_equal(ids, [[255, 0], [255, 1]])
    assert counts["ignored"] == 2


def test_list_samples_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tile_"):
        dubai.list_samples(tmp_path)
    _write_tile(tmp_path, 1)
    (tmp_path / "tile_1/masks/image_part_001.png").unlink()
    with pytest.raises(ValueError, match="image_part_001.jpg: has no matching mask"):
        dubai.list_samples(tmp_path)


def test_read_pair_size_mismatch_and_corrupt_image(tmp_path):
    _write_tile(tmp_path, 1)
    sample = dubai.list_samples(tmp_path)[0]
    Image.new("RGB", (50, 40)).save(sample.mask)
    with pytest.raises(ValueError, match="50x40"):
        dubai.read_pair(sample)
    sample.image.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError, match="cannot read image"):
        dubai.read_image(sample.image)


def test_patch_label_majority_and_purity():
    mask = np.array([[0, 0, 0, 1]] * 4, np.uint8)  # 75 % building
    assert patch_label(mask, purity=0.7) == 0
    assert patch_label(mask, purity=0.8) is None
    unlabeled = np.full((4, 4), 5, np.uint8)  # unlabeled does not vote
    assert patch_label(unlabeled, purity=0.5) is None
    mostly_ignored = np.full((4, 4), 255, np.uint8)
    mostly_ignored[0, :3] = 1
    assert patch_label(mostly_ignored, purity=0.5) is None


def test_cut_patches_counts_and_labels():
    image = np.zeros((64, 96, 3), np.uint8)
    mask = np.zeros((64, 96), np.uint8)
    mask[:, 32:64] = 1
    mask[:, 64:] = 4
    patches, labels = cut_patches(image, mask, patch_size=32, stride=32, resize=16, purity=0.9)
    assert labels == [0, 1, 4, 0, 1, 4]
    assert all(p.shape == (16, 16, 3) for p in patches)


def test_cls_params_reject_overlapping_tiles(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"cls": {"train_tiles": [1, 2], "val_tiles": [2]}}))
    with pytest.raises(ParamsError, match="must not overlap"):
        load_section("cls", path)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="simple_cnn"):
        MODELS.build("no_such_net", num_classes=5)


def test_simple_cnn_shapes():
    model = MODELS.build("simple_cnn", num_classes=5, width=4, depth=2)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(2, 1, 32, 32))


def test_stages_smoke(tmp_path, run_stage):
    """prepare -> train (1 epoch) -> evaluate on three tiny tiles, as dvc.yaml runs them."""
    data = tmp_path / "dubai"
    for tile in (1, 2, 3):
        _write_tile(data, tile, n=2)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "base": {"seed": 1, "device": "cpu", "threads": 1},
                "cls": {
                    "patch_size": 32,
                    "stride": 16,
                    "resize": 16,
                    "purity": 0.9,
                    "train_tiles": [1],
                    "val_tiles": [2],
                    "test_tiles": [3],
                    "epochs": 1,
                    "batch_size": 8,
                    "monitor": "val/accuracy",
                    "mode": "max",
                    "model_kwargs": {"width": 4, "depth": 2},
                },
            }
        )
    )
    patches, stats = tmp_path / "a/patches.npz", tmp_path / "a/stats.json"
    model, live_t, live_e = tmp_path / "m/model.pt", tmp_path / "r/train", tmp_path / "r/evaluate"
    common = ["--params", params]
    run_stage("cls_prepare", *common, "--data", data, "--out", patches, "--stats", stats)
    assert json.loads(stats.read_text())["splits"]["train"]["patches"] > 0
    run_stage("cls_train", *common, "--patches", patches, "--model", model, "--live", live_t)
    net, blob = load_checkpoint(model, MODELS.build)
    assert blob["model_name"] == "simple_cnn" and blob["params"]["cls"]["epochs"] == 1
    assert json.loads((live_t / "metrics.json").read_text())["epochs_run"] == 1
    run_stage("cls_evaluate", *common, "--patches", patches, "--model", model, "--live", live_e)
    metrics = json.loads((live_e / "metrics.json").read_text())["test"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and set(metrics["f1"]) >= {"building", "water"}
    assert (live_e / "plots/images/examples.png").stat().st_size > 0
    assert (live_e / "plots/sklearn/confusion_matrix.json").exists()


def test_stage_with_a_wrong_key_exits_naming_it(tmp_path, run_stage, caplog):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"cls": {"lrr": 0.1}}))
    args = ["--params", params, "--data", tmp_path, "--out", tmp_path / "p.npz"]
    with pytest.raises(SystemExit) as exc:
        run_stage("cls_prepare", *args, "--stats", tmp_path / "s.json")
    assert exc.value.code == 2
    assert "cls.lrr: unknown key" in caplog.text


@pytest.mark.parametrize(
    "cls, message",
    [
        ({"model": "simple_cnnn"}, "model: unknown cls model 'simple_cnnn'; valid: simple_cnn"),
        ({"test_tiles": []}, "test_tiles: must name at least one tile"),
        ({"batch_size": 0}, "batch_size: must be >= 1, got 0"),
        ({"epochs": -3}, "epochs: must be >= 1, got -3"),
        ({"label_smoothing": 1.0}, "label_smoothing: must be in [0, 1), got 1.0"),
    ],
)
def test_cls_params_name_the_bad_key(tmp_path, cls, message):
    assert params_error(tmp_path, "cls", cls) == message


def test_cls_monitors_are_what_training_logs():
    from torch.utils.data import DataLoader, TensorDataset

    from geolab.cls.config import ClsParams
    from geolab.cls.train import make_evaluate, make_step

    x, y = torch.zeros(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    model = MODELS.build("simple_cnn", num_classes=5, width=2, depth=1).eval()
    val = make_evaluate(DataLoader(TensorDataset(x, y)), torch.device("cpu"))(model)
    train = make_step(0.0)(model, (x, y))
    expected = {f"val/{k}" for k in val} | {f"train/{k}" for k in train}
    assert set(ClsParams.MONITORS) == expected
