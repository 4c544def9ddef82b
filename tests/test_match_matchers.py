import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from geolab.match import geometry as G
from geolab.match import matchers as M

ROOT = Path(__file__).resolve().parents[1]
TILE = ROOT / "data" / "sentinel2" / "T36UYA" / "T36UYA_20160621T084012_TCI.jpg"


# ------------------------------------------------------------------------------------- geometry


def test_corner_error_identity_is_zero():
    assert G.corner_error(np.eye(3), np.eye(3), 100, 80) == (0.0, 0.0)


def test_corner_error_translation():
    shifted = np.array([[1.0, 0, 3], [0, 1, 4], [0, 0, 1]])
    err = G.corner_error(shifted, np.eye(3), 64, 48)
    assert err.mean == pytest.approx(5.0) and err.max == pytest.approx(5.0)


def test_corner_error_scale_about_origin():
    # corners (0,0),(10,0),(10,10),(0,10) go to twice as far: distances 0, 10, 10*sqrt(2), 10
    err = G.corner_error(np.diag([2.0, 2.0, 1.0]), np.eye(3), 11, 11)
    assert err.mean == pytest.approx((0 + 10 + 10 * math.sqrt(2) + 10) / 4)
    assert err.max == pytest.approx(10 * math.sqrt(2))


def test_corner_error_of_no_estimate_is_inf():
    assert G.corner_error(None, np.eye(3), 10, 10) == (math.inf, math.inf)


def test_auc_hand_computed():
    # sorted errors 0.5, 2, 4, inf -> recall 1/4, 2/4, 3/4, 1; trapezoids up to each threshold:
    # t=1: 0.5*0.25/2 + 0.5*0.25 = 0.1875; t=3: 0.0625 + 1.5*0.375 + 1*0.5 = 1.125 -> 0.375;
    # t=5: 1.125 - 0.5 + 2*0.625 + 1*0.75 = 2.625 -> 0.525
    got = G.auc([4.0, math.inf, 0.5, 2.0], thresholds=(1, 3, 5))
    assert got == pytest.approx({1: 0.1875, 3: 0.375, 5: 0.525})


def test_auc_edges():
    assert G.auc([0.0, 0.0], thresholds=(1,)) == {1: 1.0}
    assert G.auc([float("nan"), math.inf], thresholds=(1, 3)) == {1: 0.0, 3: 0.0}
    assert G.auc([], thresholds=(1,)) == {1: 0.0}


def test_estimate_homography_needs_four_matches():
    pts = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    H, inliers = G.estimate_homography(pts, pts + 1)
    assert H is None and inliers.shape == (3,) and not inliers.any()


@pytest.mark.parametrize("method", ["usac_magsac", "ransac"])
def test_estimate_homography_recovers_truth_with_outliers(method):
    rng = np.random.default_rng(0)
    H_true = G.homography_from_params(200, 100, rotation_deg=10, scale=1.1, perspective=(0.05, 0))
    pts0 = rng.uniform(0, [200, 100], (60, 2))
    pts1 = G.project(pts0, H_true)
    pts1[:10] += rng.uniform(30, 60, (10, 2))  # outliers
    H, inliers = G.estimate_homography(pts0, pts1, method=method, threshold=1.0)
    assert G.corner_error(H, H_true, 200, 100).max < 1e-3
    assert not inliers[:10].any() and inliers[10:].all()


def test_estimate_homography_unknown_method():
    with pytest.raises(KeyError, match="usac_magsac"):
        G.estimate_homography(np.zeros((4, 2)), np.zeros((4, 2)), method="lmeds")


def test_random_homography_without_distortion_is_identity():
    rng = np.random.default_rng(1)
    H = G.random_homography(rng, 120, 80, 0.0, (1.0, 1.0), 0.0, 0.0)
    np.testing.assert_allclose(H, np.eye(3), atol=1e-12)


def test_random_homography_keeps_centre_without_perspective():
    H = G.random_homography(np.random.default_rng(2), 101, 61, 45.0, (0.5, 2.0), 0.2, 0.0)
    np.testing.assert_allclose(G.project(np.array([[50.0, 30.0]]), H), [[50.0, 30.0]], atol=1e-9)
    assert not np.allclose(H, np.eye(3))


def test_rotation_by_90_degrees_about_centre():
    H = G.homography_from_params(11, 11, rotation_deg=90)
    np.testing.assert_allclose(G.project(np.array([[0.0, 0.0]]), H), [[10.0, 0.0]], atol=1e-9)


def test_warp_translation_and_mask():
    img = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    H = np.array([[1.0, 0, 10], [0, 1, 0], [0, 0, 1]])
    warped, valid = G.warp(img, H, out_size=(50, 40))
    assert warped.shape == (40, 50) and valid.shape == (40, 50)
    assert not valid[:, :10].any() and valid[:, 10:].all()
    np.testing.assert_allclose(warped[:, 10:], img[:, :-10])


# ------------------------------------------------------------------------------------- registry


def test_unknown_matcher_lists_valid_names():
    with pytest.raises(KeyError) as err:
        M.build_matcher("orb")
    for name in ("disk_lightglue", "aliked_lightglue", "sift_ratio", "sift_mnn"):
        assert name in str(err.value)


def test_unknown_kwarg_lists_accepted():
    with pytest.raises(TypeError, match="ratio"):
        M.build_matcher("sift_ratio", match_threshold=0.2)


def test_matcher_kwargs_picks_what_each_matcher_takes():
    params = {"max_keypoints": 256, "resize": None, "ratio": 0.7, "match_threshold": 0.2}
    assert M.matcher_kwargs("sift_ratio", params) == {
        "max_keypoints": 256,
        "resize": None,
        "ratio": 0.7,
    }
    assert "ratio" not in M.matcher_kwargs("disk_lightglue", params)


@pytest.mark.parametrize("name", ["superpoint_lightglue", "superpoint_superglue"])
def test_superpoint_matchers_need_user_weights(name, tmp_path):
    with pytest.raises(M.MatcherUnavailable, match="non-commercial"):
        M.build_matcher(name)
    fake = tmp_path / "superpoint.pth"
    fake.write_bytes(b"")
    with pytest.raises(M.MatcherUnavailable, match="SuperPoint"):
        M.build_matcher(name, weights=str(fake))


def test_images_are_checked():
    m = M.build_matcher("sift_ratio")
    with pytest.raises(ValueError, match="uint8"):
        m(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        m(np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), np.uint8))


def test_resize_round_trip_uses_pixel_centres():
    img, scale = M.resize_longest(np.zeros((50, 100), np.uint8), 50)
    assert img.shape == (25, 50) and scale == (2.0, 2.0)
    # the centre of resized pixel 0 is the border between original pixels 0 and 1
    np.testing.assert_allclose(M._undo_resize(np.array([[0.0, 0.0]]), scale), [[0.5, 0.5]])


# ------------------------------------------------------------------------- weights and matching


@pytest.mark.parametrize("features", ["disk", "aliked"])
def test_lightglue_weights_load_with_only_harmless_differences(features):
    model, report = M.load_lightglue(features)
    params = {name for name, _ in model.named_parameters()}
    buffers = {name for name, _ in model.named_buffers()}
    assert report.missing == ["confidence_thresholds"] and not set(report.missing) & params
    assert set(report.missing) <= buffers
    assert all(M._LEGACY_KEYS.fullmatch(k) for k in report.unexpected)
    assert not model.training


def test_load_checked_rejects_real_differences():
    lin = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="missing"):
        M.load_checked(lin, {"weight": torch.zeros(2, 2)}, "lin")
    state = {**lin.state_dict(), "extra.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError, match="extra.weight"):
        M.load_checked(lin, state, "lin")
    state = {**lin.state_dict(), "log_assignment.0.r": torch.tensor([2.0])}
    with pytest.raises(RuntimeError, match="log_assignment"):
        M.load_checked(lin, state, "lin")


@pytest.fixture(scope="module")
def tile():
    grey = cv2.imread(str(TILE), cv2.IMREAD_GRAYSCALE)
    assert grey is not None, f"missing {TILE} (run `dvc pull`)"
    return grey


@pytest.fixture(scope="module")
def pair(tile):
    """A 256 px grey crop and its warp by a 20 degree rotation and 0.9 scale."""
    crop = np.ascontiguousarray(tile[256:512, 0:256])
    H = G.homography_from_params(256, 256, rotation_deg=20, scale=0.9)
    return crop, G.warp(crop, H)[0], H


def _check_result(out):
    n = len(out["kpts0"])
    assert out["kpts0"].shape == out["kpts1"].shape == (n, 2)
    assert out["kpts0"].dtype == out["kpts1"].dtype == np.float32
    assert out["scores"].shape == (n,)
    assert n <= min(out["n_kpts0"], out["n_kpts1"]) and out["time_s"] > 0


@pytest.mark.parametrize(
    ("name", "kwargs", "max_err"),
    [
        ("disk_lightglue", {"device": "cpu"}, 2.0),
        ("aliked_lightglue", {"device": "cpu"}, 2.0),
        ("sift_ratio", {}, 3.0),
        ("sift_mnn", {}, 3.0),
    ],
)
def test_matcher_recovers_known_homography(pair, name, kwargs, max_err):
    img0, img1, H_true = pair
    out = M.build_matcher(name, max_keypoints=512, **kwargs)(img0, img1)
    _check_result(out)
    H, inliers = G.estimate_homography(out["kpts0"], out["kpts1"])
    assert inliers.sum() >= (50 if "lightglue" in name else 8)
    assert G.corner_error(H, H_true, 256, 256).max < max_err


def test_disk_lightglue_keypoints_in_original_frame_when_resized(tile):
    # a rectangular crop whose sides are not multiples of 16, matched at 2/3 size
    img0 = np.ascontiguousarray(tile[256:456, 0:240])
    H_true = G.homography_from_params(240, 200, rotation_deg=-15, scale=1.1)
    img1 = G.warp(img0, H_true)[0]
    m = M.build_matcher("disk_lightglue", max_keypoints=512, resize=160, device="cpu")
    out = m(np.dstack([img0] * 3), img1)
    _check_result(out)
    for k in ("kpts0", "kpts1"):
        assert out[k][:, 0].max() > 200 and out[k][:, 1].max() > 160  # beyond the resized frame
        assert (out[k] >= -0.5).all() and (out[k] <= [239.5, 199.5]).all()
    reproj = np.linalg.norm(G.project(out["kpts0"], H_true) - out["kpts1"], axis=1)
    assert np.median(reproj) < 2.0
    H, _ = G.estimate_homography(out["kpts0"], out["kpts1"])
    assert G.corner_error(H, H_true, 240, 200).max < 3.0
    same = M.build_matcher("disk_lightglue", max_keypoints=512, resize=160, device="cpu")
    assert same.models is m.models  # built once per process and configuration


def test_speed_options_keep_matching_and_reject_unknown_names():
    img = cv2.imread("data/sentinel2/T36UYA/T36UYA_20160621T084012_TCI.jpg", cv2.IMREAD_GRAYSCALE)[
        :256, :256
    ]
    shifted = np.ascontiguousarray(img[5:, 3:])
    fast = M.build_matcher(
        "disk_lightglue", max_keypoints=512, speed=["channels_last", "int8", "bf16"], device="cpu"
    )
    out = fast(img, shifted)
    assert len(out["kpts0"]) > 100
    d = out["kpts0"] - out["kpts1"]
    assert np.median(np.abs(d - [3, 5]), axis=0).max() < 1.0  # the known shift
    glue = fast.models[1]
    assert type(glue.posenc.Wr) is torch.nn.Linear  # kept float: kornia reads its weight
    assert any("quantized" in type(m).__module__ for m in glue.modules())
    with pytest.raises(ValueError, match="unknown speed options"):
        M.build_matcher("disk_lightglue", speed=["turbo"])


def test_onnx_runtime_disk_matches_like_torch():
    import kornia.feature as KF

    img = cv2.imread("data/sentinel2/T36UYA/T36UYA_20160621T084012_TCI.jpg", cv2.IMREAD_GRAYSCALE)[
        :192, :192
    ]
    shifted = np.ascontiguousarray(img[4:, 7:])
    plain = M.build_matcher("disk_lightglue", max_keypoints=256, device="cpu")
    onnx = M.build_matcher("disk_lightglue", max_keypoints=256, speed=["onnx"], device="cpu")
    disk = onnx.models[0]
    assert isinstance(disk.unet, M.OnnxRuntimeModule) and isinstance(disk, KF.DISK)
    # the exported network computes what torch computes, at a size other than the export's
    x = torch.rand(1, 3, 96, 128)
    with torch.inference_mode():
        ref = plain.models[0].unet(x)
    got = disk.unet(x)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-2)
    out = onnx(img, shifted)
    assert len(out["kpts0"]) > 50
    d = out["kpts0"] - out["kpts1"]
    assert np.median(np.abs(d - [7, 4]), axis=0).max() < 1.0  # the known shift
    with pytest.raises(ValueError, match="DISK on the CPU only"):
        _ = M.build_matcher("aliked_lightglue", speed=["onnx"], device="cpu").models


@pytest.mark.parametrize("name", ["disk_lightglue", "aliked_lightglue"])
def test_batch_extracts_both_images_at_once_with_the_same_result(name):
    img = cv2.imread("data/sentinel2/T36UYA/T36UYA_20160621T084012_TCI.jpg", cv2.IMREAD_GRAYSCALE)[
        :160, :160
    ]
    other = np.ascontiguousarray(np.roll(img, (3, 6), axis=(0, 1)))
    plain = M.build_matcher(name, max_keypoints=256, device="cpu")
    batch = M.build_matcher(name, max_keypoints=256, speed=["batch"], device="cpu")
    a, b = plain(img, other), batch(img, other)
    assert len(a["kpts0"]) > 20 and len(a["kpts0"]) == len(b["kpts0"])
    for k in ("kpts0", "kpts1"):
        assert np.abs(a[k] - b[k]).max() < 1e-2
    # images of different sizes go one at a time
    out = batch(img, np.ascontiguousarray(other[:150]))
    assert len(out["kpts0"]) > 20


def test_params_accept_exactly_the_speed_options():
    import typing

    from geolab.match.config import MatchParams

    hint = typing.get_type_hints(MatchParams)["speed"]
    assert set(typing.get_args(typing.get_args(hint)[0])) == M.SPEEDUPS


def test_subpixel_offsets_find_the_peak_of_a_parabola():
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    heat = -((xx - 10.3) ** 2) - 2 * (yy - 7.8) ** 2
    xy = torch.tensor([[10.0, 8.0], [11.0, 7.0], [0.0, 0.0], [29.0, 19.0]])
    off = M.subpixel_offsets(heat, xy)
    assert torch.allclose(off[0], torch.tensor([0.3, -0.2]), atol=1e-5)
    # a pixel that is not the maximum: the vertex lies beyond half a pixel, clipped
    assert torch.allclose(off[1], torch.tensor([-0.5, 0.5]))
    # at the border the missing neighbour is the centre: no maximum there, no offset
    assert torch.equal(off[2], torch.zeros(2)) and torch.equal(off[3], torch.zeros(2))
    flat = torch.zeros(5, 5)
    assert torch.equal(M.subpixel_offsets(flat, torch.tensor([[2, 2]])), torch.zeros(1, 2))


def test_disk_subpixel_keypoints_move_less_than_half_a_pixel_and_localise_better(tile):
    img0 = np.ascontiguousarray(tile[256:512, 0:256])
    H_true = G.homography_from_params(256, 256, rotation_deg=17, scale=1.05)
    img1 = G.warp(img0, H_true)[0]
    whole = M.build_matcher("disk_lightglue", max_keypoints=512, device="cpu")
    sub = M.build_matcher("disk_lightglue", max_keypoints=512, device="cpu", subpixel=True)
    x = whole._tensor(np.dstack([img0] * 3)[:250, :250])  # not a multiple of 16: padded
    (k0, d0), (k1, d1) = whole._extract(x)[0], sub._extract(x)[0]
    assert k0.shape == k1.shape and torch.equal(d0, d1)  # the same keypoints, descriptors
    step = (k1 - k0).abs()
    assert step.max() <= 0.5 and (step > 0.05).float().mean() > 0.5
    errors = []
    for m in (whole, sub):
        out = m(img0, img1)
        reproj = np.linalg.norm(G.project(out["kpts0"], H_true) - out["kpts1"], axis=1)
        errors.append(np.median(reproj[reproj < 4]))
    assert errors[1] < errors[0]
