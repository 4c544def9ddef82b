"""seg data preparation: patch grid, padding, class frequencies, the stage on tiny tiles."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from geolab.datasets import dubai
from geolab.seg.data import IGNORE, class_frequencies, cut, patch_origins, rescale


def test_patch_origins_cover_the_edges():
    assert patch_origins(10, 4, 3) == [0, 3, 6]
    assert patch_origins(11, 4, 3) == [0, 3, 6, 7]
    assert patch_origins(4, 4, 2) == [0]
    assert patch_origins(3, 4, 2) == [0]


def test_cut_pads_small_images_with_ignore():
    image = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    mask = np.ones((3, 5), np.uint8)
    xs, ms = cut(image, mask, size=4, stride=2)
    assert len(xs) == 2 and all(x.shape == (4, 4, 3) for x in xs)
    assert (ms[0][3] == IGNORE).all() and (ms[0][:3] == 1).all()
    np.testing.assert_array_equal(xs[0][:3], image[:, :4])
    np.testing.assert_array_equal(ms[1][:3], mask[:, 1:5])  # flush with the right edge


def test_rescale_keeps_mask_ids():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 3
    image = np.zeros((8, 8, 3), np.uint8)
    small_image, small_mask = rescale(image, mask, 0.5)
    assert small_image.shape == (4, 4, 3)
    assert set(np.unique(small_mask)) == {0, 3}


def test_class_frequencies_ignore_index():
    masks = np.array([[0, 0, 1, IGNORE]], np.uint8)
    freq = class_frequencies(masks)
    assert freq["building"] == 2 / 3 and freq["land"] == 1 / 3 and freq["water"] == 0


def _tile(root, tile, colour, size=40):
    for sub in ("images", "masks"):
        (root / f"tile_{tile}" / sub).mkdir(parents=True)
    Image.new("RGB", (size, size), (90, 90, 90)).save(root / f"tile_{tile}/images/p.jpg")
    Image.new("RGB", (size, size), dubai.COLOURS[colour]).save(root / f"tile_{tile}/masks/p.png")


def test_stage_smoke(tmp_path, run_stage):
    data = tmp_path / "dubai"
    for tile, colour in [(1, "building"), (2, "water"), (3, "road")]:
        _tile(data, tile, colour)
    params = tmp_path / "params.yaml"
    seg = {
        "scale": 0.5,
        "patch_size": 16,
        "stride": 8,
        "train_tiles": [1],
        "val_tiles": [2],
        "test_tiles": [3],
    }
    params.write_text(yaml.safe_dump({"base": {"device": "cpu"}, "seg": seg}))
    out, stats = tmp_path / "p.npz", tmp_path / "s.json"
    run_stage("seg_prepare", "--params", params, "--data", data, "--out", out, "--stats", stats)
    s = json.loads(stats.read_text())["splits"]
    assert (
        s["train"]["patches"] == 4
    )  # 20 px after scaling: origins 0 and 4 and s["train"]["class_frequency"]["building"] == 1.0
    assert s["val"]["class_frequency"]["water"] == 1.0
    with np.load(out) as arrays:
        assert arrays["test_x"].shape == (4, 16, 16, 3) and (arrays["test_y"] == 2).all()


def test_read_image_converts_8_bit_modes_and_refuses_wide_pixels(tmp_path, monkeypatch):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    for mode in ("L", "P", "RGBA", "RGB"):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(rgb).convert(mode).save(path)
        out = dubai.read_image(path)
        assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(dubai.read_image(tmp_path / "RGB.png"), rgb)
    # 16-bit and float pixels would be clipped to white / black by convert("RGB")
    wide = {
        "g16.png": Image.fromarray(np.full((6, 5), 1000, np.uint16)),
        "f32.tif": Image.fromarray(np.full((6, 5), 0.5, np.float32)),
    }
    for name, img in wide.items():
        img.save(tmp_path / name)
        with pytest.raises(ValueError, match=f"{name}: .* pixels \\(16-bit or float\\)"):
            dubai.read_image(tmp_path / name)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes((tmp_path / "RGB.png").read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.png: cannot read image"):
        dubai.read_image(truncated)
    # an image over the pixel limit is named with its size; PIL's own limit is restored
    limit = Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(dubai, "MAX_PIXELS", 20)
    with pytest.raises(ValueError, match="RGB.png: too large to read"):
        dubai.read_image(tmp_path / "RGB.png")
    assert Image.MAX_IMAGE_PIXELS == limit
