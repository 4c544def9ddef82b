"""A UNet diagram drawn from a real model: the shapes are traced, not typed in.

``python -m geolab.seg.diagram --model unet_pretrained --out docs/figures/seg/unet.png`` runs
a forward pass on a blank patch, records the feature maps of every encoder and decoder level
with hooks, and draws the U: the encoder going down on the left, the decoder coming up on the
right, skip connections across.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from torch import nn  # noqa: E402

from geolab.seg.models import MODELS  # noqa: E402


@dataclasses.dataclass
class Level:
    """One feature map: channels and side length (square input)."""

    channels: int
    side: int


@dataclasses.dataclass
class Trace:
    """The levels of a traced UNet for a ``side`` x ``side`` input."""

    side: int
    encoder: list[Level]
    decoder: list[Level]
    classes: int
    title: str


def _hooked(modules: list[nn.Module], model: nn.Module, x: torch.Tensor) -> list[Level]:
    shapes: list[Level] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: shapes.append(Level(o.shape[1], o.shape[-1])))
        for m in modules
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def trace(model: nn.Module, side: int = 128) -> Trace:
    """Record the encoder and decoder feature maps of a registry UNet on a blank input.

    Args:
        model: a ``unet`` or ``unet_pretrained`` model from :data:`MODELS`.
        side: input side in pixels (a multiple of the model's divisor).

    Raises:
        TypeError: a model whose structure is not known here.
    """
    model = model.eval()
    x = torch.zeros(1, 3, side, side)
    if hasattr(model, "stem") and hasattr(model, "fuse"):  # geolab's plain UNet
        levels = _hooked([model.stem, *model.down, *model.fuse], model, x)
        n = len(model.down) + 1
        classes = model.head.out_channels
        return Trace(side, levels[:n], levels[n:], classes, "UNet (plain)")
    if hasattr(model, "encoder") and hasattr(model, "decoder"):  # smp Unet, timm encoder
        with torch.inference_mode():
            feats = model.encoder(x)
        enc = [Level(f.shape[1], f.shape[-1]) for f in feats[1:]]
        dec = _hooked(list(model.decoder.blocks), model, x)
        classes = model.segmentation_head[0].out_channels
        name = getattr(model.encoder, "name", "encoder").removeprefix("tu-")
        return Trace(side, enc, dec, classes, f"UNet with a pretrained {name} encoder")
    raise TypeError(f"cannot trace a {type(model).__name__}: expected a geolab seg UNet")


def _box(ax: Any, x: float, y: float, level: Level, colour: str, width: float) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - 0.32),
            width,
            0.64,
            boxstyle="round,pad=0.02",
            fc=colour,
            ec="black",
            lw=0.8,
        )
    )
    ax.text(
        x,
        y,
        f"{level.channels} ch\n{level.side}×{level.side}",
        ha="center",
        va="center",
        fontsize=8,
    )


def _arrow(ax: Any, a: tuple[float, float], b: tuple[float, float], style: str = "-") -> None:
    ax.add_patch(
        FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, lw=1, ls=style, color="0.25")
    )


def _row(tr: Trace, side: int) -> float:
    """Rows go down one per halving of the resolution; the input image is row 0."""
    return -1.0 - (tr.side // side).bit_length() + 1


def figure(tr: Trace) -> plt.Figure:
    """Draw a traced UNet: boxes are feature maps (channels, side), arrows the data flow."""
    bottom = min(_row(tr, lv.side) for lv in tr.encoder)
    fig, ax = plt.subplots(figsize=(9, 1.0 * (1 - bottom) + 1.6))
    width = lambda lv: 0.6 + 0.12 * max(lv.channels, 1).bit_length()  # noqa: E731
    xd, xh = 4.2, 6.8
    image = Level(3, tr.side)
    _box(ax, 0, 0, image, "0.85", width(image))
    above = 0.0
    for lv in tr.encoder:
        y = _row(tr, lv.side)
        _box(ax, 0, y, lv, "#9ecae1", width(lv))
        _arrow(ax, (0, above - 0.34), (0, y + 0.34))
        above = y
    prev = (0.0, above)
    for lv in tr.decoder:
        y = _row(tr, lv.side)
        _box(ax, xd, y, lv, "#fdae6b", width(lv))
        start = (prev[0] + (0.5 if prev[0] == 0 else 0), prev[1] + 0.34)
        _arrow(ax, start, (xd - (0.5 if prev[0] == 0 else 0), y - 0.34))
        skip = next(
            (e for e in tr.encoder if e.side == lv.side and _row(tr, e.side) != above), None
        )
        if skip is not None:
            _arrow(ax, (width(skip) / 2, y), (xd - width(lv) / 2, y), style="--")
        prev = (xd, y)
    head = Level(tr.classes, tr.side)
    y = _row(tr, tr.side)
    _box(ax, xh, y, head, "#a1d99b", width(head))
    _arrow(ax, (xd + width(tr.decoder[-1]) / 2, prev[1]), (xh - width(head) / 2, y))
    ax.text(xh, y + 0.45, "class logits", ha="center", fontsize=8)
    ax.text(0, 0.45, "input image", ha="center", fontsize=8)
    ax.text(0, bottom - 0.7, "encoder: downsample ×2 per level", ha="center", fontsize=8)
    ax.text(
        xd,
        bottom - 0.7,
        "decoder: upsample ×2, concatenate skip, convolve",
        ha="center",
        fontsize=8,
    )
    ax.text(xh, bottom, "- - -  skip connection\n(same resolution)", ha="center", fontsize=8)
    ax.set_xlim(-1.6, xh + 1.2)
    ax.set_ylim(bottom - 1.0, 0.8)
    ax.set_axis_off()
    ax.set_title(f"{tr.title}: {tr.side}×{tr.side} patch → {tr.classes} class maps", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    """Write the diagram of a registry model to a PNG."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="unet_pretrained", help=f"one of {MODELS.names()}")
    p.add_argument("--side", type=int, default=128, help="input patch side")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    kwargs: dict[str, Any] = {"num_classes": 6}
    if args.model == "unet_pretrained":
        kwargs["weights"] = "none"
    fig = figure(trace(MODELS.build(args.model, **kwargs), args.side))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()
