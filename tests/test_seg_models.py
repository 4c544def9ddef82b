"""seg models: one shared tester, subclassed per architecture (smp's tests/models/base.py style)."""

import pytest
import torch

from geolab.seg.models import MODELS


class _ModelTester:
    name: str
    kwargs: dict
    size = 64

    def build(self):
        torch.manual_seed(0)
        return MODELS.build(self.name, num_classes=6, **self.kwargs)

    def test_forward_shape(self):
        model = self.build().eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, self.size, self.size))
        assert out.shape == (2, 6, self.size, self.size) and torch.isfinite(out).all()

    def test_backward_reaches_every_parameter(self):
        model = self.build().train()
        model(torch.randn(2, 3, self.size, self.size)).mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


class TestUNet(_ModelTester):
    name, kwargs = "unet", {"width": 4, "depth": 3}

    def test_rejects_bad_shapes(self):
        model = self.build()
        with pytest.raises(ValueError, match="multiples of 8"):
            model(torch.zeros(1, 3, 60, 64))
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            model(torch.zeros(1, 1, 64, 64))

    def test_width_and_depth_change_the_size(self):
        small = sum(p.numel() for p in self.build().parameters())
        big = sum(p.numel() for p in MODELS.build("unet", num_classes=6).parameters())
        assert big > small


class TestUNetPretrained(_ModelTester):
    name, kwargs = "unet_pretrained", {"weights": "offline"}

    def test_offline_weights_only_for_lite0(self):
        with pytest.raises(ValueError, match="only efficientnet_lite0"):
            MODELS.build(self.name, num_classes=6, encoder="resnet18", weights="offline")
        model = MODELS.build(self.name, num_classes=6, encoder="resnet18", weights="none")
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 6, 64, 64)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="unet, unet_pretrained"):
        MODELS.build("segformer", num_classes=6)


def test_diagram_traces_real_shapes(tmp_path):
    import matplotlib.pyplot as plt

    from geolab.seg.diagram import figure, main, trace

    tr = trace(MODELS.build("unet", num_classes=6, width=4, depth=2), side=32)
    assert [(lv.channels, lv.side) for lv in tr.encoder] == [(4, 32), (8, 16), (16, 8)]
    assert [(lv.channels, lv.side) for lv in tr.decoder] == [(8, 16), (4, 32)]
    assert tr.classes == 6
    plt.close(figure(tr))
    pre = trace(MODELS.build("unet_pretrained", num_classes=3, weights="none"), side=64)
    assert [lv.side for lv in pre.encoder] == [32, 16, 8, 4, 2]
    assert pre.decoder[-1].side == 64 and pre.classes == 3
    with pytest.raises(TypeError, match="cannot trace"):
        trace(torch.nn.Conv2d(3, 3, 1))
    main(["--model", "unet", "--side", "32", "--out", str(tmp_path / "u.png")])
    assert (tmp_path / "u.png").stat().st_size > 0
