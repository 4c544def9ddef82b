"""Classification models, built by name from :data:`MODELS`."""

from __future__ import annotations

from torch import nn

from geolab.common.registry import Registry

MODELS: Registry[nn.Module] = Registry("cls model")


@MODELS.register("simple_cnn")
class SimpleCNN(nn.Module):
    """A plain CNN: ``depth`` blocks of conv-BN-ReLU-maxpool, global pooling, a linear head.

    Args:
        num_classes: number of output classes.
        width: channels of the first block (doubled in each next block).
        depth: number of blocks.
        dropout: dropout before the head.

    Shapes:
        ``(B, 3, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(self, num_classes: int, width: int = 16, depth: int = 3, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(depth):
            c_out = width * 2**i
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def forward(self, x):  # noqa: D102
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
        return self.head(self.features(x))
