"""seg training: losses, class weights, augmentation alignment, and a one-epoch stage smoke run."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import params_error

from geolab.common.params import ParamsError, load_section
from geolab.common.train import load_checkpoint
from geolab.seg.models import MODELS
from geolab.seg.train import IGNORE, _augment, class_weights, dice_loss, make_loss


def test_dice_loss_perfect_and_ignored():
    target = torch.tensor([[[0, 1], [1, IGNORE]]])
    perfect = torch.nn.functional.one_hot(target.clamp_max(2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-3)
    uniform = torch.zeros(1, 3, 2, 2)
    # probs 1/3 everywhere on 3 labelled pixels: class 0: 2*(1/3)/(1+1)+1 smoothing, by hand
    d0 = (2 * (1 / 3) + 1) / (3 * (1 / 3) + 1 + 1)
    d1 = (2 * (2 / 3) + 1) / (3 * (1 / 3) + 2 + 1)
    assert float(dice_loss(uniform, target)) == pytest.approx(1 - (d0 + d1) / 2, rel=1e-5)


def test_loss_terms_sum_and_ignore():
    logits = torch.randn(2, 6, 4, 4)
    target = torch.randint(0, 6, (2, 4, 4))
    target[0, 0, 0] = IGNORE
    ce = make_loss(["ce"], None, 2.0)(logits, target)
    dice = make_loss(["dice"], None, 2.0)(logits, target)
    both = make_loss(["ce", "dice"], None, 2.0)(logits, target)
    assert float(both) == pytest.approx(float(ce + dice), rel=1e-5)
    focal0 = make_loss(["focal"], None, 0.0)(logits, target)
    assert float(focal0) == pytest.approx(float(ce), rel=1e-5)  # gamma 0 is plain CE


def test_class_weights_inverse_sqrt():
    y = np.array([0] * 4 + [1] * 1 + [IGNORE] * 3, np.uint8)
    w = class_weights(y, "inverse_sqrt")
    assert w[0] * 2 == pytest.approx(float(w[1]))  # 4x rarer -> 2x weight
    assert float(w[2:].sum()) == 0 and float(w[:2].mean()) == pytest.approx(1.0)
    assert class_weights(y, "none") is None


def test_augment_moves_image_and_mask_together():
    torch.manual_seed(0)
    y = torch.arange(16).reshape(4, 4)
    x = torch.stack([y.float() / 15] * 3)
    for _ in range(8):
        xa, ya = _augment(x, y, jitter=0.0)
        np.testing.assert_allclose(xa[0].numpy(), ya.float().numpy() / 15, rtol=1e-6)


def test_stage_smoke(tmp_path, run_stage):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in [("train", 6), ("val", 2), ("test", 2)]:
        arrays[f"{split}_x"] = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
        arrays[f"{split}_y"] = rng.integers(0, 6, (n, 32, 32)).astype(np.uint8)
        arrays[f"{split}_tile"] = np.zeros(n, np.int64)
    np.savez(tmp_path / "p.npz", **arrays)
    seg = {
        "model": "unet",
        "model_kwargs": {"width": 4, "depth": 2},
        "epochs": 1,
        "batch_size": 4,
        "scale": 0.5,
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"device": "cpu"}, "seg": seg}))
    model = tmp_path / "model.pt"
    run_stage(
        "seg_train",
        "--params",
        params,
        "--patches",
        tmp_path / "p.npz",
        "--model",
        model,
        "--live",
        tmp_path / "live",
    )
    net, blob = load_checkpoint(model, MODELS.build)
    assert blob["extra"]["divisor"] == 4 and blob["extra"]["scale"] == 0.5
    assert blob["extra"]["infer_scales"] == [0.5]  # default: the training scale
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 6, 32, 32)
    metrics = json.loads((tmp_path / "live/metrics.json").read_text())
    assert 0 <= metrics["val"]["miou"] <= 1


def test_miou_counts_pixels_predicted_unlabeled():
    from geolab.seg.train import miou_scores

    cm = np.zeros((6, 6), np.int64)
    cm[0, 0], cm[0, 5] = 2, 2  # building: 2 right, 2 predicted unlabeled -> IoU 0.5
    cm[1, 1] = 4  # land: perfect
    out = miou_scores(cm)
    assert out["miou"] == pytest.approx(0.75) and out["pixel_accuracy"] == pytest.approx(0.75)
    assert miou_scores(np.zeros((6, 6), np.int64))["miou"] == 0.0


@pytest.mark.parametrize("scales", [[], [0.0], [0.5, 1.5]])
def test_infer_scales_are_checked(tmp_path, scales):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seg": {"infer_scales": scales}}))
    with pytest.raises(ParamsError, match="infer_scales"):
        load_section("seg", path)


@pytest.mark.parametrize(
    "seg, message",
    [
        ({"patch_size": 100000}, "patch_size: must be in 16..1024, got 100000"),
        ({"patch_size": 8, "stride": 8}, "patch_size: must be in 16..1024, got 8"),
        (
            {"model": "unet", "model_kwargs": {"depth": 3}, "patch_size": 100, "stride": 50},
            "patch_size: must be a multiple of 8 for model unet of depth 3, got 100",
        ),
        ({"model": "unet3"}, "model: unknown seg model 'unet3'; valid: unet, unet_pretrained"),
        ({"test_tiles": []}, "test_tiles: must name at least one tile"),
        ({"train_tiles": []}, "train_tiles: must name at least one tile"),
        ({"val_tiles": []}, "val_tiles: must name at least one tile"),
        (
            {"monitor": "val/mIoU"},
            "monitor: 'val/mIoU' is not a metric of this study; "
            "valid: val/miou, val/pixel_accuracy, val/loss, train/loss",
        ),
        ({"jitter": -1}, "jitter: must be >= 0, got -1.0"),
        ({"focal_gamma": -2}, "focal_gamma: must be >= 0, got -2.0"),
        ({"batch_size": 0}, "batch_size: must be >= 1, got 0"),
        ({"scale": 0.0}, "scale must be in (0, 1], got 0.0"),
    ],
)
def test_seg_params_name_the_bad_key(tmp_path, seg, message):
    assert params_error(tmp_path, "seg", seg) == message


@pytest.mark.parametrize(
    "seg",
    [
        {"patch_size": 1024, "stride": 512},
        {"patch_size": 100, "stride": 50},  # unet_pretrained takes any side
        {"model": "unet", "model_kwargs": {"depth": 2}, "patch_size": 20, "stride": 20},
        {"scale": 1.0, "jitter": 0.0, "focal_gamma": 0.0},
    ],
)
def test_seg_params_accept_valid_edges(tmp_path, seg):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seg": seg}))
    assert load_section("seg", path).patch_size == seg.get("patch_size", 256)


def test_seg_monitors_are_what_training_logs():
    from torch.utils.data import DataLoader, TensorDataset

    from geolab.seg.config import SegParams
    from geolab.seg.train import make_evaluate

    x, y = torch.zeros(2, 3, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long)
    loss_fn = make_loss(["ce"], None, 2.0)
    model = MODELS.build("unet", num_classes=6, width=2, depth=2).eval()
    with torch.no_grad():
        val = make_evaluate(DataLoader(TensorDataset(x, y)), loss_fn, torch.device("cpu"))(model)
    assert set(SegParams.MONITORS) == {f"val/{k}" for k in val} | {"train/loss"}
