"""Static int8 DISK for ONNX Runtime (the ``onnx_int8`` speed option)."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from geolab.match import int8
from geolab.match import matchers as M

ROOT = Path(__file__).resolve().parents[1]
T36 = ROOT / "data" / "sentinel2" / "T36UYA"


class Tiny(nn.Module):
    """conv -> relu -> conv with 5 output channels, like DISK's descriptor + heatmap output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def _run(blob: bytes, x: torch.Tensor) -> np.ndarray:
    return M.OnnxRuntimeModule(blob)(x).numpy()


def test_split_output_conv_computes_the_same_function():
    torch.manual_seed(0)
    model = Tiny().eval()
    blob = int8.export_onnx(model, torch.rand(1, 3, 16, 16))
    split = int8.split_output_conv(blob, keep=4)
    import onnx

    graph = onnx.load_from_string(split).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Conv") == 3 and ops[-1] == "Concat"
    inits = {i.name for i in graph.initializer}
    assert {"split_a.weight", "split_b.bias"} <= inits and not {"b.weight", "b.bias"} & inits
    x = torch.rand(2, 3, 24, 40)  # another size and batch than the export's
    with torch.inference_mode():
        ref = model(x).numpy()
    np.testing.assert_allclose(_run(split, x), ref, atol=1e-5)
    np.testing.assert_allclose(_run(blob, x), ref, atol=1e-5)


def test_split_output_conv_refuses_a_graph_not_ending_in_conv():
    blob = int8.export_onnx(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="does not come from a Conv"):
        int8.split_output_conv(blob)


def test_quantised_model_is_close_to_float_and_uses_int8():
    import onnx

    torch.manual_seed(0)
    model = Tiny().eval()
    blob = int8.split_output_conv(int8.export_onnx(model, torch.rand(1, 3, 16, 16)), keep=4)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, 32, 32), dtype=np.float32) for _ in range(4)]
    q = int8.quantize_static_int8(blob, calib, float_convs=())
    graph = onnx.load_from_string(q).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) >= 3
    assert int8.float_conv_inputs(q) == [False, False, False]
    # the default keeps the first convolution float
    first_float = int8.quantize_static_int8(blob, calib)
    assert int8.float_conv_inputs(first_float) == [True, False, False]
    assert int8.float_conv_inputs(blob) == [True, True, True]
    with pytest.raises(ValueError, match="float_convs"):
        int8.quantize_static_int8(blob, calib, float_convs=(7,))
    # the heatmap convolution kept float by name (as DISK's matcher does), the rest int8
    heat = int8.quantize_static_int8(blob, calib, float_convs=(), float_names=int8.SPLIT_CONVS[1:])
    int8_weights = int8.int8_weight_convs(heat)
    assert len(int8_weights) == 3 and int8_weights.pop("split_conv_b") is False
    assert all(int8_weights.values())
    with pytest.raises(ValueError, match="float_names"):
        int8.quantize_static_int8(blob, calib, float_names=("nope",))
    x = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    with torch.inference_mode():
        ref = model(x).numpy()
    got = _run(q, x)
    assert np.abs(got - ref).mean() < 0.05 * np.abs(ref).mean() + 1e-3
    with pytest.raises(ValueError, match="at least one calibration image"):
        int8.quantize_static_int8(blob, [])


def test_calibration_images_are_padded_disk_inputs(tmp_path):
    images = int8.calibration_images(T36, longest=100, count=3)
    assert len(images) == 3
    for x in images:
        assert x.dtype == np.float32 and x.shape[:2] == (1, 3)
        assert x.shape[2] % 16 == 0 and x.shape[3] % 16 == 0 and max(x.shape[2:]) <= 112
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.1
    # enlarged images (the eo-learn scenes are 100 px) go the matcher's way too
    eolearn = ROOT / "data" / "sentinel2" / "eolearn_slovenia"
    (x,) = int8.calibration_images(eolearn, longest=200, count=1)
    first = sorted(eolearn.glob("*.png"))[0]
    from geolab.match.data import read_any

    rgb, _ = M.resize_longest(M.to_rgb(read_any(first)), 200)
    assert rgb.shape[0] > 100  # enlarged
    ref = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    np.testing.assert_array_equal(x[:, :, :h, :w], ref)
    assert x.shape[2] == h + (-h) % 16 and not x[:, :, h:].any() and not x[:, :, :, w:].any()
    with pytest.raises(FileNotFoundError, match="calibration folder"):
        int8.calibration_images(tmp_path / "nope", 100)
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no calibration images"):
        int8.calibration_images(tmp_path, 100)


def test_onnx_int8_disk_recovers_a_known_shift():
    img = cv2.imread(str(T36 / "T36UYA_20160621T084012_TCI.jpg"), cv2.IMREAD_GRAYSCALE)[:192, :192]
    shifted = np.ascontiguousarray(img[4:, 7:])
    fast = M.build_matcher(
        "disk_lightglue", max_keypoints=256, resize=192, speed=["onnx_int8"], device="cpu",
        int8_calibration=ROOT / M.DEFAULT_CALIBRATION,
    )  # fmt: skip
    unet = fast.models[0].unet
    assert isinstance(unet, M.OnnxRuntimeModule)
    quantised = int8.float_conv_inputs(unet.model)
    assert quantised[0] and len(quantised) > 5 and not any(quantised[1:])
    weights = int8.int8_weight_convs(unet.model)
    assert weights.pop(int8.SPLIT_CONVS[1]) is False  # the heatmap keeps float weights
    assert sum(weights.values()) == len(weights) - 1  # all others but the first are int8
    out = fast(img, shifted)
    assert len(out["kpts0"]) > 50
    d = out["kpts0"] - out["kpts1"]
    assert np.median(np.abs(d - [7, 4]), axis=0).max() < 1.0  # the known shift
    # the int8 network stays close to the float one on DISK's real weights
    plain = M.build_matcher("disk_lightglue", max_keypoints=256, device="cpu")
    x = torch.from_numpy(int8.calibration_images(T36, 128, count=1)[0])
    with torch.inference_mode():
        ref = plain.models[0].unet(x)
    got = unet(x)
    corr = np.corrcoef(got[0, 128].ravel(), ref[0, 128].ravel())[0, 1]
    assert corr > 0.98  # heatmap
    desc_err = (got[:, :128] - ref[:, :128]).abs().mean() / ref[:, :128].abs().mean()
    assert desc_err < 0.3


def test_onnx_int8_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="DISK only, not aliked"):
        _ = M.build_matcher("aliked_lightglue", speed=["onnx_int8"], device="cpu").models
    with pytest.raises(FileNotFoundError, match="x: calibration folder"):
        M.build_matcher(
            "disk_lightglue", speed=["onnx_int8"], int8_calibration=tmp_path / "x", device="cpu"
        )
    # without onnx_int8 the folder is not needed
    M.build_matcher("disk_lightglue", int8_calibration=tmp_path / "x", device="cpu")
    # the params' default is the matcher's, and the pipeline passes the param on
    from geolab.match.config import MatchParams
    from geolab.match.pipeline import make_matchers

    p = MatchParams(speed=["onnx_int8"], int8_calibration=str(tmp_path / "y"))
    assert MatchParams().int8_calibration == M.DEFAULT_CALIBRATION
    with pytest.raises(FileNotFoundError, match="y: calibration folder"):
        make_matchers(["disk_lightglue"], p, "cpu")


def test_pair_cli_with_int8_disk(tmp_path):
    from geolab.match.cli import main as match_cli

    img = cv2.imread(str(T36 / "T36UYA_20160621T084012_TCI.jpg"), cv2.IMREAD_GRAYSCALE)[:320, :320]
    a, b, js = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "m.json"
    cv2.imwrite(str(a), img[:288, :288])
    cv2.imwrite(str(b), img[20:308, 12:300])  # shifted by (12, 20) px
    eolearn = ROOT / "data" / "sentinel2" / "eolearn_slovenia"
    argv = ["pair", str(a), str(b), "--max-keypoints", "512", "--speed", "onnx_int8",
            "--int8-calibration", str(eolearn), "--device", "cpu", "--json", str(js)]  # fmt: skip
    assert match_cli(argv) == 0
    import json

    H = np.array(json.loads(js.read_text())["homography"])
    assert np.allclose(H[:2, 2], [-12, -20], atol=1.5)
    bad = argv[:-6] + ["--int8-calibration", str(tmp_path / "none"), "--json", str(js)]
    with pytest.raises(SystemExit, match="none: calibration folder"):
        match_cli(bad)
    (tmp_path / "empty").mkdir()
    bad = argv[:-6] + ["--int8-calibration", str(tmp_path / "empty"), "--device", "cpu",
                       "--json", str(js)]  # fmt: skip
    with pytest.raises(SystemExit, match="no calibration images"):
        match_cli(bad)
    sift = ["pair", str(a), str(b), "--matcher", "sift_ratio", "--speed", "onnx_int8",
            "--json", str(js)]  # fmt: skip
    with pytest.raises(SystemExit, match="sift_ratio does not take --speed"):
        match_cli(sift)
    with pytest.raises(SystemExit, match="aliked_lightglue does not take --subpixel"):
        match_cli(["pair", str(a), str(b), "--matcher", "aliked_lightglue", "--subpixel",
                   "--json", str(js)])  # fmt: skip
    sub = ["pair", str(a), str(b), "--max-keypoints", "512", "--subpixel", "--device", "cpu",
           "--json", str(js)]  # fmt: skip
    assert match_cli(sub) == 0
    H = np.array(json.loads(js.read_text())["homography"])
    assert np.allclose(H[:2, 2], [-12, -20], atol=1.0)


def _bench():
    import runpy

    return runpy.run_path(str(ROOT / "benchmarks" / "match_speed.py"), run_name="bench")


def test_benchmark_bootstrap_resamples_date_pairs_together():
    bench = _bench()
    ids = ["a__b", "a__b@1", "a__b@2", "c__d", "c__d@1", "e__f"]
    draws = bench["bootstrap_draws"](ids, 200)
    assert len(draws) == 200
    for i in draws[:50]:
        picked = [ids[k].split("@")[0] for k in i]
        for pair, n in (("a__b", 3), ("c__d", 2), ("e__f", 1)):
            assert picked.count(pair) % n == 0  # whole clusters only
    again = bench["bootstrap_draws"](ids, 200)
    assert all(np.array_equal(x, y) for x, y in zip(draws, again, strict=True))
    inf = float("inf")
    base = [1.0, 2.0, inf, inf, inf, inf]
    same = bench["auc_difference"](base, base, draws)
    assert same["diff"] == 0.0 and same["ci90"] == [0.0, 0.0]
    worse = bench["auc_difference"]([inf] * 6, base, draws)
    assert worse["diff"] < 0 and worse["ci90"][0] < worse["ci90"][1] <= 0


def test_subpixel_benchmark_pairs_carry_their_true_homography():
    import runpy

    bench = runpy.run_path(str(ROOT / "benchmarks" / "match_subpixel.py"), run_name="bench")
    pairs = bench["warped_dates"](128, seed=3)
    assert len(pairs) == 12
    again = bench["warped_dates"](128, seed=3)
    assert all(np.array_equal(a["H"], b["H"]) for a, b in zip(pairs, again, strict=True))
    p = pairs[0]
    assert p["image0"].shape == p["image1"].shape == (128, 128, 3)
    from geolab.match.geometry import project

    # a pixel of image0 lands where H sends it in image1
    x, y = 64, 60
    u, v = np.rint(project(np.array([[x, y]], float), p["H"])[0]).astype(int)
    assert p["valid1"][v, u]
    assert np.abs(p["image1"][v, u].astype(int) - p["image0"][y, x].astype(int)).max() < 40
