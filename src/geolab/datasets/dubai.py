"""The Dubai aerial imagery dataset (MBRSC, annotated by Humans in the Loop; CC0).

Layout in ``data/dubai``: ``tile_<n>/images/image_part_<k>.jpg`` and
``tile_<n>/masks/image_part_<k>.png``. Masks are RGB or palette PNGs whose colours encode the
class; the colour table below was verified by counting pixels in all 72 masks (the dataset's own
``classes.json`` lists colours the masks do not use). ``#000000`` (about 0.5 % of pixels) and any
other colour map to :data:`IGNORE_INDEX` and are counted.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

CLASSES: tuple[str, ...] = ("building", "land", "road", "vegetation", "water", "unlabeled")
COLOURS: dict[str, tuple[int, int, int]] = {
    "building": (0x3C, 0x10, 0x98),
    "land": (0x84, 0x29, 0xF6),
    "road": (0x6E, 0xC1, 0xE4),
    "vegetation": (0xFE, 0xDD, 0x3A),
    "water": (0xE2, 0xA9, 0x29),
    "unlabeled": (0x9B, 0x9B, 0x9B),
}
IGNORE_INDEX = 255

_TILE = re.compile(r"^tile_(\d+)$")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image/mask pair."""

    tile: int
    image: Path
    mask: Path


def list_samples(root: str | Path) -> list[Sample]:
    """List image/mask pairs under ``root``, sorted by tile and name.

    Raises:
        FileNotFoundError: ``root`` has no ``tile_<n>`` folders.
        ValueError: an image without a mask or a mask without an image (names the file).
    """
    root = Path(root)
    tiles = sorted((int(m.group(1)), p) for p in root.glob("tile_*") if (m := _TILE.match(p.name)))
    if not tiles:
        raise FileNotFoundError(f"{root}: no tile_<n> folders (is `dvc pull` done?)")
    samples = []
    for tile, folder in tiles:
        images = {p.stem: p for p in (folder / "images").glob("*.jpg")}
        masks = {p.stem: p for p in (folder / "masks").glob("*.png")}
        for stem in sorted(images.keys() ^ masks.keys()):
            orphan = images.get(stem) or masks[stem]
            raise ValueError(f"{orphan}: has no matching {'mask' if stem in images else 'image'}")
        samples += [Sample(tile, images[s], masks[s]) for s in sorted(images)]
    return samples


def check_disjoint_tiles(splits: dict[str, list[int]]) -> None:
    """Raise ValueError if a tile is named in more than one split (tiles are the split unit)."""
    seen: dict[int, str] = {}
    for split, tiles in splits.items():
        for tile in tiles:
            if seen.setdefault(tile, split) != split:
                names = [f"{k}_tiles" for k in splits]
                raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} must not overlap")


def split_samples(root: str | Path, splits: dict[str, list[int]]) -> list[tuple[str, Sample]]:
    """The samples of the tiles named in ``splits``, each with its split name.

    Raises:
        ValueError: a tile named in ``splits`` is not in the data.
    """
    tile_split = {t: s for s, tiles in splits.items() for t in tiles}
    samples = [s for s in list_samples(root) if s.tile in tile_split]
    missing = set(tile_split) - {s.tile for s in samples}
    if missing:
        raise ValueError(f"{root}: tiles {sorted(missing)} named in params are not in the data")
    return [(tile_split[s.tile], s) for s in samples]


#: Largest image :func:`read_image` opens (PIL's own guard stops at about 179 million pixels).
MAX_PIXELS = 1_000_000_000

#: PIL modes with more than 8 bits a channel: ``convert("RGB")`` would clip them to white/black.
_WIDE_MODES = ("I", "F")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB (grey, palette and RGBA are converted).

    Raises:
        ValueError: the file is corrupt or truncated, has 16-bit or float pixels (which the
            conversion to 8-bit RGB would clip), or has more than :data:`MAX_PIXELS` pixels;
            the message names the file.
    """
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS // 2
    try:
        with Image.open(path) as img:
            if img.mode.split(";")[0] in _WIDE_MODES:
                raise ValueError(
                    f"{path}: {img.mode} pixels (16-bit or float); convert the image to 8-bit "
                    "RGB first, scaling its values to 0-255"
                )
            img.load()
            return np.asarray(img.convert("RGB"))
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: too large to read ({err})") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: cannot read image: {err}") from err
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_mask(path: str | Path, counts: Counter | None = None) -> np.ndarray:
    """Read a colour mask as ``(H, W)`` uint8 class ids (:data:`CLASSES` order).

    Args:
        path: an RGB or palette PNG.
        counts: if given, ``counts["ignored"]`` is increased by the number of pixels of colours
            outside the table (``#000000`` and any unknown colour), which become
            :data:`IGNORE_INDEX`.
    """
    rgb = read_image(path).astype(np.int32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(code.shape, IGNORE_INDEX, dtype=np.uint8)
    for idx, name in enumerate(CLASSES):
        r, g, b = COLOURS[name]
        out[code == (r << 16 | g << 8 | b)] = idx
    if counts is not None:
        counts["ignored"] += int((out == IGNORE_INDEX).sum())
    return out


def read_pair(sample: Sample, counts: Counter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and its mask, checking that their sizes agree.

    Raises:
        ValueError: size mismatch (names both files).
    """
    image, mask = read_image(sample.image), read_mask(sample.mask, counts)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"{sample.image} is {image.shape[1]}x{image.shape[0]} but {sample.mask} is "
            f"{mask.shape[1]}x{mask.shape[0]}"
        )
    return image, mask
