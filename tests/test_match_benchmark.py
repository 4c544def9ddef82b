"""The match benchmark's pieces: dates and pairs, scoring, rotation search, augmentation."""

import datetime as dt
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from geolab.match import augment, figures
from geolab.match.data import (
    PairParams,
    Scene,
    category,
    choose_pairs,
    list_scenes,
    load_pairs,
    make_pair,
    nodata_mask,
    save_pairs,
)
from geolab.match.evaluate import (
    RobustParams,
    RotationSearch,
    _unrotate,
    keep_valid,
    rotate_pair,
    score_pair,
    summarise,
)
from geolab.match.geometry import project
from geolab.match.matchers import build_matcher

D = dt.date


def test_category():
    assert category(D(2016, 6, 21), D(2016, 8, 30)) == "same_season"
    assert category(D(2016, 3, 30), D(2016, 8, 30)) == "cross_season"
    assert category(D(2016, 2, 12), D(2016, 12, 5)) == "cross_season"  # two different winters
    assert category(D(2016, 6, 21), D(2019, 6, 16)) == "cross_year"


def test_list_scenes_real_sample():
    scenes = list_scenes("data/sentinel2/T36UYA")
    assert len(scenes) == 12 and {s.place for s in scenes} == {"T36UYA"}
    assert scenes[0].date == D(2016, 2, 12)


def test_list_scenes_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_scenes(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no scene files"):
        list_scenes(tmp_path)


def test_choose_pairs_is_seeded_and_labelled(tmp_path):
    dates = [D(2016, 3, 1), D(2016, 4, 1), D(2016, 8, 1), D(2019, 8, 1), D(2019, 9, 1)]
    scenes = [Scene(f"s{i}", "T", d, tmp_path) for i, d in enumerate(dates)]
    a = choose_pairs(scenes, 2, np.random.default_rng(0))
    b = choose_pairs(scenes, 2, np.random.default_rng(0))
    assert [(x.id, y.id, c) for x, y, c in a] == [(x.id, y.id, c) for x, y, c in b]
    for x, y, c in a:
        assert category(x.date, y.date) == c
    assert sum(c == "cross_year" for *_, c in a) == 2


def _texture(size=160, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 200, (size // 8, size // 8)).astype(np.uint8)
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def test_make_pair_homography_is_the_truth():
    img = _texture()
    p = PairParams(size=128, max_rotation_deg=20, scale_range=[0.9, 1.1], max_shear=0.05,
                   max_perspective=0.05)  # fmt: skip
    pair = make_pair(img, img, p, np.random.default_rng(1))
    a, b, H = pair["image0"], pair["image1"], pair["H"]
    # a pixel of image0 lands where H says in image1 (inside the valid area)
    pts = np.array([[40.0, 50.0], [70.0, 80.0], [64.0, 64.0]])
    q = project(pts, H)
    for (x0, y0), (x1, y1) in zip(pts, q, strict=True):
        assert pair["valid1"][round(y1), round(x1)]
        assert abs(int(a[round(y0), round(x0)]) - int(b[round(y1), round(x1)])) < 25
    assert pair["image1_raw"].shape == (128, 128)


def test_nodata_mask():
    img = np.full((20, 20), 100, np.uint8)
    img[:5] = 0
    img[15:] = 255
    m = nodata_mask(img)
    assert m[0].all() and m[-1].all() and not m[10].any()


def test_keep_valid():
    k = np.array([[1.0, 1.0], [8.0, 8.0]])
    valid = np.zeros((10, 10), bool)
    valid[5:, 5:] = True
    assert keep_valid(k, k, valid, None).tolist() == [False, True]
    assert keep_valid(k, k, None, None).all()


def test_summarise_hand_computed():
    rows = [
        {"corner_error": 0.5, "inlier_ratio": 1.0, "matches": 10, "inliers": 10, "ms": 2.0},
        {"corner_error": math.inf, "inlier_ratio": 0.0, "matches": 2, "inliers": 0, "ms": 4.0},
    ]
    s = summarise(rows, solved_px=5)
    assert s["solved_pct"] == 50.0 and s["matches"] == 6 and s["ms"] == 3.0
    # cumulative curve (0, 0) -> (0.5, 0.5) -> (t, 0.5): area 0.125 + 0.5 * (t - 0.5), over t
    assert s["auc@1px"] == pytest.approx(0.375)
    assert s["auc@10px"] == pytest.approx(0.4875)
    assert s["median_corner_error"] is None


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_unrotate_inverts_rot90(k):
    img = np.arange(5 * 7).reshape(5, 7)
    turned = np.rot90(img, k)
    ys, xs = np.mgrid[: turned.shape[0], : turned.shape[1]]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    back = _unrotate(pts, k, 7, 5).round().astype(int)
    assert (img[back[:, 1], back[:, 0]] == turned[ys.ravel(), xs.ravel()]).all()


def test_sift_scores_a_pair_and_rotation_search_recovers_180():
    import cv2

    img = cv2.imread("data/sentinel2/T36UYA/T36UYA_20160621T084012_TCI.jpg", 0)[:320, :320]
    pair = {"image0": img, "image1_raw": img, "valid1_raw": np.ones_like(img, bool)}
    sift = build_matcher("sift_ratio", max_keypoints=2048)
    robust = RobustParams()
    small = score_pair(sift, rotate_pair(pair, 10), robust)
    assert small["corner_error"] < 3 and small["inliers"] >= 8
    flipped = rotate_pair(pair, 180)
    searched = score_pair(RotationSearch(sift), flipped, robust)
    assert searched["corner_error"] < 3


def test_augment_is_seeded_and_keeps_shape():
    img = _texture(64)
    p = augment.AugmentParams(jitter=0.3, haze=0.5, snow=0.5)
    a = augment.seasonal(img, np.random.default_rng(3), p)
    b = augment.seasonal(img, np.random.default_rng(3), p)
    assert a.shape == img.shape and a.dtype == np.uint8 and (a == b).all()
    assert not (a == img).all()
    same = augment.seasonal(img, np.random.default_rng(3), augment.AugmentParams(0, 0, 0))
    assert (same == img).all()
    snowy = augment.snow(img, np.random.default_rng(0), 1.0)
    assert snowy.mean() > img.mean() + 50


def test_save_and_load_pairs(tmp_path):
    img = _texture(64)
    pair = make_pair(img, img, PairParams(size=64), np.random.default_rng(0))
    save_pairs(tmp_path, [{"id": "a__b", "category": "same_season", **pair}])
    (back,) = load_pairs(tmp_path)
    assert back["id"] == "a__b" and np.allclose(back["H"], pair["H"])
    assert (back["image1"] == pair["image1"]).all() and (back["valid1"] == pair["valid1"]).all()
    with pytest.raises(FileNotFoundError, match="match_pairs"):
        load_pairs(tmp_path / "none")


def test_figures_smoke():
    img = _texture(64)
    pair = {"image0": img, "image1": img}
    scored = {"kpts0": np.array([[1.0, 2.0], [5, 5]]), "kpts1": np.array([[1.0, 2.0], [9, 9]]),
              "inlier_mask": np.array([True, False]), "inliers": 1, "matches": 2,
              "corner_error": 0.3}  # fmt: skip
    fig = figures.match_grid([(pair, scored, "t")])
    assert len(fig.axes[0].lines) == 2
    assert fig.axes[0].lines[0].get_color() == "lime"
    plt.close(fig)
    plt.close(figures.error_curves({"a": [0.5, math.inf]}))
    plt.close(figures.rotation_sweep({"a": {0.0: 1.0, 90.0: 2.0}}, "inliers"))


def test_sweep_choice_takes_the_best_matched_pair_of_the_category():
    from geolab.match.pipeline import sweep_choice

    pairs = [{"id": i, "category": c} for i, c in [("a", "x"), ("b", "x"), ("c", "y")]]
    scored = {
        "m1": [{"id": "a", "inliers": 5}, {"id": "b", "inliers": 3}, {"id": "c", "inliers": 99}],
        "m2": [{"id": "a", "inliers": 0}, {"id": "b", "inliers": 4}, {"id": "c", "inliers": 99}],
    }
    assert sweep_choice(pairs, scored, "x")["id"] == "b"  # 7 > 5; "c" is another category
    assert sweep_choice(pairs, scored, "none")["id"] == "c"  # empty category: all pairs


def test_degenerate_homographies_are_named():
    from geolab.match.geometry import degenerate

    assert degenerate(np.eye(3), 100, 80) is None
    assert degenerate(None, 100, 80) == "no homography"
    mirror = np.array([[-1.0, 0, 99], [0, 1, 0], [0, 0, 1]])
    assert "mirrored" in degenerate(mirror, 100, 80)
    tiny = np.diag([0.01, 0.01, 1.0])
    assert "area scaled" in degenerate(tiny, 100, 80)
    horizon = np.array([[1.0, 0, 0], [0, 1, 0], [-0.02, 0, 1]])  # the line x = 50 goes to infinity
    assert degenerate(horizon, 100, 80) is not None


def test_fit_status_says_why_a_pair_is_not_solved():
    from geolab.match.evaluate import fit_status

    blank = {"valid0": np.zeros((8, 8), bool), "valid1": np.ones((8, 8), bool)}
    assert fit_status(blank, 10, 0, None, 8, 8) == "no usable pixels in image 0 (cloud or no-data)"
    ok = {"valid0": np.ones((8, 8), bool)}
    assert fit_status(ok, 9, 3, None, 8, 8) == "too few matches (3, 6 on cloud/no-data dropped)"
    assert fit_status(ok, 9, 9, np.eye(3), 8, 8) == "fitted"


def test_all_cloud_pair_is_unsolved_not_a_crash():
    img = np.full((96, 96), 255, np.uint8)  # saturated: cloud everywhere
    pair = {"image0": img, "image1": img, "H": np.eye(3),
            "valid0": ~nodata_mask(img), "valid1": ~nodata_mask(img)}  # fmt: skip
    r = score_pair(build_matcher("sift_ratio"), pair, RobustParams())
    assert r["status"].startswith("no usable pixels") and r["corner_error"] == math.inf
