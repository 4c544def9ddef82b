"""Offline ImageNet EfficientNet-Lite0 weights mapped onto timm's layout."""

import numpy as np
import pytest
import torch
from PIL import Image

from geolab.common.pretrained import efficientnet_lite0_state_dict, load_efficientnet_lite0

MILITARY_UNIFORM, SUIT = 652, 834  # ImageNet classes of matplotlib's Grace Hopper portrait


def _grace_hopper() -> torch.Tensor:
    import matplotlib.cbook as cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = np.asarray(Image.open(path).convert("RGB").resize((224, 224)), np.float32) / 255
    return torch.from_numpy((img - 0.5) / 0.5).permute(2, 0, 1)[None]  # timm lite0: mean=std=0.5


def test_state_dict_has_timm_names_and_every_tensor():
    weights = efficientnet_lite0_state_dict()
    assert len(weights) == 247
    assert next(iter(weights)) == "conv_stem.weight" and "classifier.weight" in weights


def test_mapped_weights_recognise_a_real_photo():
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    assert load_efficientnet_lite0(model) == []
    with torch.no_grad():
        probs = model(_grace_hopper()).softmax(-1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM and probs[MILITARY_UNIFORM] > 0.2
    assert SUIT in probs.topk(3).indices.tolist()
    torch.manual_seed(0)
    random = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        assert random(_grace_hopper()).softmax(-1).max() < 0.1


def test_loads_into_an_smp_unet_encoder():
    smp = pytest.importorskip("segmentation_models_pytorch")
    unet = smp.Unet(encoder_name="tu-efficientnet_lite0", encoder_weights=None, classes=6)
    assert load_efficientnet_lite0(unet.encoder.model) == []
    ref = efficientnet_lite0_state_dict()["conv_stem.weight"]
    assert torch.equal(unet.encoder.model.conv_stem.weight.detach(), ref)
    assert unet(torch.zeros(1, 3, 64, 64)).shape == (1, 6, 64, 64)
