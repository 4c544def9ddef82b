"""geoloc model: the 4-view GeolocNet, its backbones, freezing and the expected position."""

import numpy as np
import pytest
import torch

from geolab.geoloc.model import MODELS, POOLING, GeolocNet, build_backbone, expected_xy

SIZE = 32  # pixels per view: enough for every backbone here, and fast


def views(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def net(**kwargs) -> GeolocNet:
    torch.manual_seed(0)
    kwargs = {"num_cells": 7, "weights": "none", "hidden": 16, **kwargs}
    return GeolocNet(**kwargs)


@pytest.fixture(scope="module")
def lite0_dim():
    return int(build_backbone("efficientnet_lite0", "none")[1])


@pytest.mark.parametrize("pooling", POOLING)
def test_output_and_feature_shapes(pooling, lite0_dim):
    model = net(pooling=pooling).eval()
    with torch.no_grad():
        out = model(views(3))
        feats = model.features(views(3))
    assert set(out) == {"logits", "uv"}
    assert out["logits"].shape == (3, 7) and out["uv"].shape == (3, 2)
    assert torch.isfinite(out["logits"]).all() and torch.isfinite(out["uv"]).all()
    assert lite0_dim == 1280  # EfficientNet-Lite0's pooled features
    assert feats.shape == (3, 4 * lite0_dim if pooling == "concat" else lite0_dim)


@pytest.mark.parametrize("pooling", POOLING)
def test_pooling_fuses_the_per_view_features(pooling):
    model = net(pooling=pooling).eval()
    x = views(2)
    with torch.no_grad():
        per_view = model.backbone(x.flatten(0, 1)).reshape(2, 4, -1)
        fused = model.features(x)
    expected = {
        "concat": torch.cat([per_view[:, i] for i in range(4)], 1),  # N, E, S, W in order
        "mean": per_view.mean(1),
        "max": per_view.max(1).values,
    }[pooling]
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_concat_depends_on_view_order_mean_and_max_do_not():
    x = views(2)
    rotated = x[:, [1, 2, 3, 0]]  # the same photos, headings shifted by 90 degrees
    for pooling, invariant in (("concat", False), ("mean", True), ("max", True)):
        model = net(pooling=pooling).eval()
        with torch.no_grad():
            a, b = model(x)["logits"], model(rotated)["logits"]
        assert torch.allclose(a, b, atol=1e-5) is invariant, pooling


def test_hidden_zero_gives_linear_heads():
    model = net(hidden=0, pooling="mean")
    assert not any(isinstance(m, torch.nn.Linear) for m in model.trunk)
    assert model.cell_head.in_features == model.xy_head.in_features == 1280
    assert net(hidden=16).cell_head.in_features == 16


def test_rejects_bad_views_pooling_and_cells():
    model = net()
    bad = [
        torch.zeros(2, 3, 3, SIZE, SIZE),  # three views
        torch.zeros(2, 4, 1, SIZE, SIZE),  # grey photos
        torch.zeros(8, 3, SIZE, SIZE),  # a plain image batch
    ]
    for x in bad:
        with pytest.raises(ValueError, match=r"expected views \(B, 4, 3, H, W\)"):
            model(x)
    with pytest.raises(ValueError, match="concat, mean, max"):
        GeolocNet(num_cells=3, weights="none", pooling="sum")
    with pytest.raises(ValueError, match="num_cells"):
        GeolocNet(num_cells=0, weights="none")


def test_backbone_errors_name_the_way_out():
    with pytest.raises(ValueError, match=r"timm\.list_models\(\).*torchvision:<name>"):
        build_backbone("no_such_backbone_xyz", "none")
    with pytest.raises(ValueError, match="torchvision has no classification model 'no_such'"):
        build_backbone("torchvision:no_such", "none")
    with pytest.raises(ValueError, match="only efficientnet_lite0"):
        build_backbone("resnet18", "offline")
    with pytest.raises(ValueError, match="no offline weights ship for torchvision:resnet18"):
        build_backbone("torchvision:resnet18", "offline")
    with pytest.raises(ValueError, match="offline, online, none"):
        build_backbone("efficientnet_lite0", "imagenet")


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("mobilenet_v3_small", 576)])
def test_torchvision_backbone_drops_its_classifier(name, dim):
    torch.manual_seed(0)
    backbone, got = build_backbone(f"torchvision:{name}", "none")
    assert got == dim
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, dim)
    model = net(backbone=f"torchvision:{name}", pooling="concat").eval()
    assert model.trunk[1].in_features == 4 * dim
    with torch.no_grad():
        assert model(views(2))["logits"].shape == (2, 7)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_torchvision_backbone_with_aux_heads_trains():
    model = net(backbone="torchvision:googlenet").train()
    out = model(views(2))
    (out["logits"].sum() + out["uv"].sum()).backward()
    assert out["logits"].shape == (2, 7)


def test_timm_backbone_without_weights():
    backbone, dim = build_backbone("resnet10t", "none")
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, dim)


def test_offline_weights_load_into_the_backbone():
    from geolab.common.pretrained import efficientnet_lite0_state_dict

    ref = efficientnet_lite0_state_dict()
    model = GeolocNet(num_cells=5)  # default: efficientnet_lite0 with offline weights
    own = model.backbone.state_dict()
    for key in ("conv_stem.weight", "blocks.3.0.conv_pw.weight", "bn2.running_var"):
        assert torch.equal(own[key], ref[key]), key
    assert "classifier.weight" not in own  # the ImageNet head is gone: features only
    random = net(num_cells=5)
    assert not torch.equal(
        random.backbone.state_dict()["conv_stem.weight"], ref["conv_stem.weight"]
    )


def test_registry_builds_the_net():
    model = MODELS.build("geoloc_net", num_cells=4, weights="none", pooling="max", hidden=8)
    assert isinstance(model, GeolocNet) and model.cell_head.out_features == 4


def _backbone_bn(model: GeolocNet) -> list[torch.nn.BatchNorm2d]:
    return [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_frozen_backbone_gets_no_gradients_and_keeps_its_statistics():
    model = net(dropout=0.0)
    model.freeze_backbone(True)
    model.train()
    assert model.training and model.trunk.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    out = model(views(2))
    (out["logits"].sum() + out["uv"].sum()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert model.cell_head.weight.grad is not None and model.xy_head.weight.grad is not None
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats fixed

    model.zero_grad(set_to_none=True)
    model.freeze_backbone(False)
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())
    out = model(views(2))
    (out["logits"].sum() + out["uv"].sum()).backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    bn = _backbone_bn(model)[0]
    assert not torch.equal(bn.running_mean, before[_bn_key(model, bn) + ".running_mean"])


def _bn_key(model: GeolocNet, module: torch.nn.Module) -> str:
    return next(name for name, m in model.backbone.named_modules() if m is module)


def test_unfreezing_in_eval_mode_keeps_the_backbone_in_eval():
    model = net().eval()
    model.freeze_backbone(True)
    model.freeze_backbone(False)
    assert not model.backbone.training
    model.train()
    assert model.backbone.training  # no longer frozen: train() reaches it again


def test_channels_last_backbone_gives_the_same_outputs():
    model = net().eval()
    x = views(2)
    with torch.no_grad():
        ref = model(x)["logits"]
        model.to(memory_format=torch.channels_last)
        assert model._channels_last()
        torch.testing.assert_close(model(x)["logits"], ref, rtol=1e-4, atol=1e-4)


POINTS = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 3000.0]])


def test_expected_xy_one_hot_and_uniform():
    peaked = np.array([[60.0, 0.0, 0.0], [0.0, 0.0, 60.0], [0.0, 60.0, 0.0]])
    np.testing.assert_allclose(expected_xy(peaked, POINTS), POINTS[[0, 2, 1]], atol=1e-12)
    uniform = torch.full((2, 3), 4.2)
    np.testing.assert_allclose(expected_xy(uniform, POINTS), [[1000 / 3, 1000.0]] * 2)


def test_expected_xy_is_the_softmax_weighted_mean():
    # exp(ln 3) : exp(0) : exp(-inf-ish) = 3 : 1 : 0, so weights 0.75, 0.25, 0
    logits = np.array([[np.log(3.0), 0.0, -200.0]])
    got = expected_xy(logits, POINTS)
    np.testing.assert_allclose(got, [[250.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(expected_xy(logits + 17.0, POINTS), got, atol=1e-9)  # shift
    assert got.dtype == np.float64 and got.shape == (1, 2)


def test_expected_xy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not fit 3 cell points"):
        expected_xy(np.zeros((2, 4)), POINTS)
    with pytest.raises(ValueError, match="do not fit"):
        expected_xy(np.zeros(3), POINTS)
