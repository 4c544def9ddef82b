"""geolab.reporting.seg: the leave-one-tile-out table from a seeds.py --folds result."""

from geolab.reporting.seg import folds_block
from geolab.seg.data import CLASSES


def _set(values):
    per_fold = {t: {"miou_5": v} for t, v in values.items()}
    mean = sum(values.values()) / len(values)
    ious = {f"iou_{c}": {"mean": 0.5} for c in CLASSES}
    return {"per_fold": per_fold, "miou_5": {"mean": mean, "sd": 0.0}, **ious}


def test_folds_block_lists_held_out_tiles_and_wins():
    result = {
        "seeds": [42],
        "folds": [1, 2, 3],
        "configs": {
            "baseline": {"set": [], "val": _set({1: 0.5, 2: 0.6, 3: 0.7}), "test": _set({1: 0.6})},
            "v": {
                "set": ["seg.lr=0.1"],
                "val": _set({1: 0.55, 2: 0.58, 3: 0.75}),
                "test": _set({1: 0.65}),
                "vs_baseline": {
                    "val": {"per_fold": {1: 0.05, 2: -0.02, 3: 0.05}, "mean": 0.0267,
                            "min": -0.02, "max": 0.05, "wins": 2},
                    "test": {"per_fold": {1: 0.05}, "mean": 0.05, "min": 0.05, "max": 0.05,
                             "wins": 1},
                },
            },
        },
    }  # fmt: skip
    text = folds_block(result)
    assert "Tiles 1, 2, 3, each in turn" in text and "seed 42" in text
    assert "| baseline | params.yaml | 0.500, 0.600, 0.700 | 0.600 |  | 0.600 |  |" in text
    assert (
        "| v | `seg.lr=0.1` | 0.550, 0.580, 0.750 | 0.627 | +0.027 [-0.020, +0.050], 2 of 3 |"
        in text
    )
    # per-class IoU over the 5 real classes ("unlabeled" left out)
    assert "| run | building | land | road | vegetation | water |" in text
    assert "| v | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 |\n" in text
