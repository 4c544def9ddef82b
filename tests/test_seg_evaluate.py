"""seg inference and evaluation: seamless sliding windows, pixel metrics, the stage, the CLI."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from geolab.cli import main as geolab_main
from geolab.common.train import CheckpointSpec, load_checkpoint, save_checkpoint
from geolab.datasets import dubai
from geolab.seg.evaluate import (
    confusion_sample,
    evaluate_tiles,
    examples_figure,
    per_class_bars,
    pick_examples,
)
from geolab.seg.infer import blend, colour_mask, predict_proba_tile, predict_tile, window_weight
from geolab.seg.models import MODELS

CLASSES = list(dubai.CLASSES)


class ColourModel(nn.Module):
    """Per-pixel logits from colour: class = argmax(r, g, b); classes 3-5 are never predicted.

    Fails unless H and W are multiples of ``divisor``, like the real models.
    """

    def __init__(self, divisor: int):
        super().__init__()
        self.divisor = divisor
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 3 and x.shape[2] % self.divisor == 0 and x.shape[3] % self.divisor == 0
        self.shapes.append(tuple(x.shape))
        return torch.cat([10 * x, torch.full_like(x, -100.0)], dim=1)


def _extra(scale=1.0, divisor=8):
    return {
        "classes": CLASSES,
        "ignore_index": 255,
        "mean": 0.5,
        "std": 0.5,
        "scale": scale,
        "divisor": divisor,
    }


def _random_colour_image(h, w, seed):
    """Each pixel's dominant channel is a random class 0-2 (no ties)."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 3, (h, w))
    image = rng.integers(0, 100, (h, w, 3)).astype(np.uint8)
    np.put_along_axis(image, cls[..., None], rng.integers(150, 256, (h, w, 1)), axis=2)
    return image, cls.astype(np.uint8)


@pytest.mark.parametrize(
    ("h", "w", "window", "overlap"),
    [
        (5, 7, 16, 4),  # smaller than one window
        (37, 53, 16, 6),  # not multiples of the window or the divisor
        (70, 41, 24, 8),  # larger than a window, rectangular
        (33, 33, 16, 0),  # no overlap
        (1, 30, 16, 5),  # a single row, odd overlap
    ],
)
def test_predict_tile_is_seamless(h, w, window, overlap):
    image, expected = _random_colour_image(h, w, seed=h * w)
    model = ColourModel(divisor=8)
    pred = predict_tile(model, image, _extra(), window=window, overlap=overlap, batch_size=3)
    assert pred.shape == (h, w) and pred.dtype == np.uint8
    np.testing.assert_array_equal(pred, expected)
    if h + overlap > window:
        assert len(model.shapes) > 1  # several windows were merged
    prob = predict_proba_tile(model, image, _extra(), window=window, overlap=overlap)
    assert prob.shape == (6, h, w)
    np.testing.assert_allclose(prob.sum(0), 1, atol=1e-5)


def test_tta_averages_flips():
    image, expected = _random_colour_image(37, 53, seed=5)
    pointwise = ColourModel(divisor=8)  # per-pixel: flip-equivariant, so TTA changes nothing
    plain = predict_proba_tile(pointwise, image, _extra(), window=16, overlap=4)
    tta = predict_proba_tile(pointwise, image, _extra(), window=16, overlap=4, tta=True)
    np.testing.assert_allclose(tta, plain, atol=1e-5)

    class RowModel(nn.Module):  # depends on the row: flips change its output
        def forward(self, x):
            rows = torch.linspace(-3, 3, x.shape[2]).view(1, 1, -1, 1)
            return torch.cat(
                [rows.expand(x.shape[0], 1, *x.shape[2:])] * 2
                + [torch.zeros(x.shape[0], 4, *x.shape[2:])],
                1,
            )

    row = predict_proba_tile(RowModel(), image[:16, :16], _extra(), window=16, overlap=0, tta=True)
    np.testing.assert_allclose(row[0], row[0][::-1], atol=1e-6)  # symmetric after averaging
    np.testing.assert_array_equal(
        predict_tile(pointwise, image, _extra(), window=16, overlap=4, tta=True), expected
    )


def test_predict_tile_rescales_and_restores_the_size():
    blocks = np.array([[0, 1, 2, 1, 0, 2, 2], [2, 2, 0, 1, 1, 0, 1], [1, 0, 0, 2, 2, 1, 0]])
    expected = np.kron(blocks, np.ones((8, 8), np.uint8)).astype(np.uint8)  # 24 x 56
    image = np.zeros((*expected.shape, 3), np.uint8)
    np.put_along_axis(image, expected[..., None].astype(np.int64), 200, axis=2)
    model = ColourModel(divisor=4)
    pred = predict_tile(model, image, _extra(scale=0.5, divisor=4), window=8, overlap=2)
    np.testing.assert_array_equal(pred, expected)
    assert all(s[2] == 8 and s[3] == 8 for s in model.shapes)  # model pixels: after scaling
    odd = predict_tile(model, image[:23, :55], _extra(scale=0.5, divisor=4), window=8, overlap=2)
    assert odd.shape == (23, 55) and (odd == expected[:23, :55]).mean() > 0.9


class StripeModel(nn.Module):
    """Class 1 on a one-pixel stripe it can only see at full size, class 0 elsewhere.

    At full resolution (height 16) the middle column is class 1 with confidence ``p_stripe``;
    at half resolution (height 8) every pixel is class 0 with probability ``p_half``.
    """

    def __init__(self, p_stripe: float, p_half: float):
        super().__init__()
        self.p_stripe, self.p_half = p_stripe, p_half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = torch.full((b, 6, h, w), 1e-6)
        if h == 16:
            p[:, 0], p[:, 1] = 0.9, 0.1
            p[:, 0, :, 8], p[:, 1, :, 8] = 1 - self.p_stripe, self.p_stripe
        else:
            p[:, 0], p[:, 1] = self.p_half, 1 - self.p_half
        return p.log()


def test_multiscale_averages_probabilities_at_the_largest_scale():
    image = np.full((16, 16, 3), 100, np.uint8)
    extra = _extra(scale=1.0, divisor=8)
    stripe = np.zeros((16, 16), np.uint8)
    stripe[:, 8] = 1

    def run(model, **kw):
        return predict_tile(model, image, extra, window=16, overlap=0, **kw)

    sure, unsure = StripeModel(0.95, 0.6), StripeModel(0.7, 0.9)
    np.testing.assert_array_equal(run(sure), stripe)
    assert (run(sure, scales=[0.5]) == 0).all()
    # averaged at full size: the stripe survives where (p_stripe + (1 - p_half)) / 2 wins,
    # i.e. the half-scale map was upsampled, not the full-scale map shrunk
    np.testing.assert_array_equal(run(sure, scales=[0.5, 1.0]), stripe)  # 0.95 + 0.4 > 0.05 + 0.6
    assert (run(unsure, scales=[1.0, 0.5]) == 0).all()  # 0.7 + 0.1 < 0.3 + 0.9
    # the checkpoint's infer_scales are the default
    assert (predict_tile(sure, image, {**extra, "infer_scales": [0.5]}, 16, 0) == 0).all()
    with pytest.raises(ValueError, match="scales is empty"):
        run(sure, scales=[])
    with pytest.raises(ValueError, match=r"must be in \(0, 1\], got \[1.5\]"):
        run(sure, scales=[0.5, 1.5])


def test_predict_tile_rejects_bad_input():
    model = ColourModel(divisor=1)
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            predict_tile(model, bad, _extra())
    with pytest.raises(ValueError, match="uint8"):
        predict_tile(model, np.zeros((8, 8, 3), np.float32), _extra())
    with pytest.raises(ValueError, match="overlap"):
        predict_tile(model, np.zeros((8, 8, 3), np.uint8), _extra(), window=16, overlap=16)
    with pytest.raises(ValueError, match="divisor"):
        predict_tile(model, np.zeros((8, 8, 3), np.uint8), {"mean": 0.5, "std": 0.5})


def test_window_weight_is_smooth_and_never_zero():
    wt = window_weight(16, 6)
    assert wt.min() > 0 and wt.max() == 1 and np.allclose(wt, wt[::-1])
    assert (np.diff(wt[:8]) >= 0).all()


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _sample(root, tile, image, mask_ids):
    """A sample with a PNG image (exact colours) and its colour mask."""
    mask = colour_mask(mask_ids)  # 255 -> black, i.e. ignored
    _write_png(root / f"tile_{tile}/images/p.png", image)
    _write_png(root / f"tile_{tile}/masks/p.png", mask)
    return dubai.Sample(tile, root / f"tile_{tile}/images/p.png", root / f"tile_{tile}/masks/p.png")


def _solid(ids):
    """An image whose dominant channel is the given class (0 red, 1 green, 2 blue)."""
    ids = np.asarray(ids)
    image = np.zeros((*ids.shape, 3), np.uint8)
    np.put_along_axis(image, ids[..., None], 255, axis=2)
    return image


def test_evaluate_tiles_matches_hand_computed_scores(tmp_path):
    # tile A 4x4: predicted building | land; true building | road (top row), ignore, land
    pred_a = np.array([[0, 0, 1, 1]] * 4)
    true_a = np.array([[0, 0, 2, 2], [0, 0, 255, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    # tile B 2x4: predicted road everywhere; true road (top row), water x3, unlabeled x1
    pred_b = np.full((2, 4), 2)
    true_b = np.array([[2, 2, 2, 2], [4, 4, 4, 5]])
    samples = [
        _sample(tmp_path, 1, _solid(pred_a), true_a),
        _sample(tmp_path, 2, _solid(pred_b), true_b),
    ]
    out = evaluate_tiles(
        ColourModel(1), _extra(divisor=1), samples, window=8, overlap=2, keep_predictions=True
    )
    cm = np.zeros((6, 6), int)
    cm[0, 0], cm[1, 1], cm[2, 1], cm[2, 2], cm[4, 2], cm[5, 2] = 8, 5, 2, 4, 3, 1
    np.testing.assert_array_equal(out["confusion"], cm)
    np.testing.assert_array_equal(out["predictions"][0], pred_a)
    m = out["metrics"]
    iou = {"building": 1.0, "land": 5 / 7, "road": 4 / 10, "water": 0.0, "unlabeled": 0.0}
    for c, v in iou.items():
        assert m["iou"][c] == pytest.approx(v)
    assert m["iou"]["vegetation"] is None  # neither true nor predicted: undefined, not logged
    assert m["miou_5"] == pytest.approx((1 + 5 / 7 + 0.4 + 0) / 4)
    assert m["miou_6"] == pytest.approx((1 + 5 / 7 + 0.4 + 0 + 0) / 5)
    assert m["pixel_accuracy"] == pytest.approx(17 / 23)
    assert m["precision"]["road"] == pytest.approx(0.5) and m["recall"]["road"] == pytest.approx(
        4 / 6
    )
    assert m["recall"]["land"] == 1.0 and m["f1"]["building"] == 1.0
    assert out["pixels"] == 23 and out["images"] == 2
    for fig in (examples_figure(samples, out["predictions"]), per_class_bars(out["scores"])):
        fig.savefig(tmp_path / "fig.png")


def test_confusion_sample_is_a_seeded_subsample():
    cm = np.array([[50, 10], [5, 35]])
    t, p = confusion_sample(cm, n=1000, seed=0)
    assert len(t) == 100 and (np.bincount(t * 2 + p, minlength=4) == cm.ravel()).all()
    t1, p1 = confusion_sample(cm * 1000, n=500, seed=3)
    t2, p2 = confusion_sample(cm * 1000, n=500, seed=3)
    assert len(t1) == 500 and (t1 == t2).all() and (p1 == p2).all()


def test_pick_examples_is_deterministic(tmp_path):
    samples = [
        dubai.Sample(t, tmp_path / f"{n}.jpg", tmp_path / f"{n}.png") for t in (3, 1) for n in "ba"
    ]
    picked = pick_examples(samples[::-1], n=3)
    assert [(s.tile, s.image.stem) for s in picked] == [(1, "a"), (1, "b"), (3, "a")]


def _checkpoint(path):
    torch.manual_seed(0)
    kwargs = {"num_classes": 6, "width": 4, "depth": 2}
    model = MODELS.build("unet", **kwargs)
    spec = CheckpointSpec(path, "unet", kwargs, extra=_extra(scale=0.5, divisor=4))
    save_checkpoint(spec, model, epoch=1, metrics={})


def _tile(root, tile, colour, size=40):
    for sub in ("images", "masks"):
        (root / f"tile_{tile}" / sub).mkdir(parents=True)
    rng = np.random.default_rng(tile)
    image = rng.integers(0, 256, (size, size + 6, 3)).astype(np.uint8)
    Image.fromarray(image).save(root / f"tile_{tile}/images/p.jpg")
    Image.new("RGB", (size + 6, size), dubai.COLOURS[colour]).save(
        root / f"tile_{tile}/masks/p.png"
    )


def _write_series(live, metric, values):
    path = live / "plots/metrics" / f"{metric}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    name = metric.rsplit("/", 1)[-1]
    path.write_text(f"step\t{name}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(values)))


def test_stage_smoke(tmp_path, run_stage):
    data = tmp_path / "dubai"
    for tile, colour in [(1, "building"), (2, "water"), (3, "road")]:
        _tile(data, tile, colour)
    seg = {
        "scale": 0.5,
        "patch_size": 16,
        "stride": 8,
        "train_tiles": [1],
        "val_tiles": [2],
        "test_tiles": [3],
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"device": "cpu"}, "seg": seg}))
    model, live = tmp_path / "model.pt", tmp_path / "live"
    _checkpoint(model)
    train_live = tmp_path / "train"
    for metric, values in [("train/loss", [2, 1]), ("val/loss", [3, 2]), ("val/miou", [0.1, 0.2])]:
        _write_series(train_live, metric, values)
    _write_series(train_live, "val/pixel_accuracy", [0.5, 0.6])
    args = ("--params", params, "--data", data, "--model", model, "--live", live)
    run_stage(
        "seg_evaluate",
        *args,
        *("--train-live", train_live, "--window", "16", "--overlap", "4"),
        *("--sweep-factors", "2", "1", "3"),
    )
    sweep = json.loads((live / "scale_sweep.json").read_text())
    # the checkpoint's scale is 0.5: factors 1, 2, 3 -> 0.5, 1 (capped; once); its
    # infer_scales default to [0.5], already a row
    assert sweep["tiles"] == [2] and list(sweep["scales"]) == ["0.5", "1"]
    assert sweep["infer_scales"] == [0.5]
    assert all(0 <= v["miou_5"] <= 1 and "water" in v["iou"] for v in sweep["scales"].values())
    assert (live / "plots/images/scale_sweep.png").stat().st_size > 0
    test = json.loads((live / "metrics.json").read_text())["test"]
    assert 0 <= test["miou_5"] <= 1 and 0 <= test["pixel_accuracy"] <= 1 and "miou_6" in test
    assert set(test["iou"]) <= set(CLASSES) and "road" in test["recall"]
    for name in ("val_examples.png", "per_class_precision_recall.png", "training_curves.png"):
        assert (live / "plots/images" / name).stat().st_size > 0
    cm = json.loads((live / "plots/sklearn/confusion_matrix.json").read_text())
    assert len(cm["confusion_matrix.json"] if isinstance(cm, dict) else cm) == 40 * 46
    table = json.loads((live / "per_class.json").read_text())
    assert (
        table["classes"]["road"]["true_pixels"] == 40 * 46 and table["labelled_pixels"] == 40 * 46
    )


def test_cli_predict(tmp_path, capsys):
    model = tmp_path / "model.pt"
    _checkpoint(model)
    image = tmp_path / "img.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 67, 3)).astype(np.uint8)).save(
        image
    )
    out, overlay = tmp_path / "out/mask.png", tmp_path / "out/overlay.png"
    argv = ["seg", "predict", str(image), "--out", str(out), "--overlay", str(overlay)]
    assert geolab_main([*argv, "--model", str(model), "--window", "16", "--device", "cpu"]) == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (45, 67, 3)
    palette = {tuple(c) for c in dubai.COLOURS.values()}
    assert {tuple(c) for c in mask.reshape(-1, 3)} <= palette
    assert Image.open(overlay).size == (67, 45)
    assert "img.jpg" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="dvc repro seg_train"):
        geolab_main([*argv, "--model", str(tmp_path / "none.pt")])
    small = [*argv, "--model", str(model), "--window", "16", "--device", "cpu"]
    assert geolab_main([*small, "--scales", "1", "0.25"]) == 0
    net, blob = load_checkpoint(model, MODELS.build)
    rgb = np.asarray(Image.open(image).convert("RGB"))
    expected = predict_tile(net, rgb, blob["extra"], 16, 4, scales=[1, 0.25])
    np.testing.assert_array_equal(np.asarray(Image.open(out)), colour_mask(expected, CLASSES))
    with pytest.raises(SystemExit, match=r"must be in \(0, 1\], got \[2.0\]"):
        geolab_main([*small, "--scales", "2"])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit, match="bad.jpg"):
        geolab_main(["seg", "predict", str(bad), "--out", str(out), "--model", str(model)])
    with pytest.raises(SystemExit, match="missing.jpg"):
        geolab_main(["seg", "predict", str(tmp_path / "missing.jpg"), "--out", str(out)])
    # an output path where no file can go fails before any work and writes nothing
    fresh = tmp_path / "fresh.png"
    for flags in (["--out", str(tmp_path)], ["--out", str(fresh), "--overlay", str(tmp_path)]):
        with pytest.raises(SystemExit, match=f"{tmp_path}: is a directory"):
            geolab_main(["seg", "predict", str(image), *flags, "--model", str(model)])
    assert not fresh.exists()
    with pytest.raises(SystemExit, match="img.jpg is a file"):
        geolab_main(
            ["seg", "predict", str(image), "--out", str(image / "m.png"), "--model", str(model)]
        )
    with pytest.raises(SystemExit) as exit_:
        geolab_main([*small, "--batch-size", "0"])
    assert exit_.value.code == 2  # argparse
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="garbage.pt: not a geolab checkpoint"):
        geolab_main([*argv, "--model", str(garbage)])


def test_blend_is_half_and_half():
    image = np.full((2, 2, 3), 100, np.uint8)
    out = blend(image, np.zeros((2, 2), np.uint8))
    np.testing.assert_array_equal(
        out[0, 0], np.rint((np.array(dubai.COLOURS["building"]) + 100) / 2)
    )
