"""Bad inputs and outputs of `geolab match pair`: one clear line or a "not solved" result."""

import json
import math
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from geolab.match import data as D
from geolab.match.cli import main as match_cli
from geolab.match.data import MIN_SIDE, read_any, too_small

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _texture(h=96, w=96, seed=0):
    """A smooth random texture that SIFT finds keypoints in."""
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (max(h // 8, 2), max(w // 8, 2))).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _png(path, h=96, w=96, seed=0):
    cv2.imwrite(str(path), _texture(h, w, seed))
    return path


def _truncated(src, dst, keep=0.6):
    blob = src.read_bytes()
    dst.write_bytes(blob[: int(len(blob) * keep)])
    return dst


def _geotiff(path, bands, **options):
    import rasterio

    count, h, w = bands.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count,
                       dtype=bands.dtype, **options) as ds:  # fmt: skip
        ds.write(bands)
    return path


def _pair(tmp_path, *extra, a=None, b=None):
    """Run the CLI on two images (textured PNGs unless given) with SIFT."""
    a = a or _png(tmp_path / "a.png")
    b = b or _png(tmp_path / "b.png", seed=1)
    return match_cli(["pair", str(a), str(b), "--matcher", "sift_ratio", *map(str, extra)])


# ------------------------------------------------------------------------ truncated / corrupt


def test_truncated_png_is_an_error_naming_the_file_not_black_pixels(tmp_path):
    trunc = _truncated(_png(tmp_path / "full.png", 256, 256), tmp_path / "trunc.png")
    with pytest.raises(ValueError, match=r"trunc\.png: truncated or corrupt PNG"):
        read_any(trunc)
    js = tmp_path / "o.json"
    with pytest.raises(SystemExit, match=r"^geolab match pair: .*trunc\.png: truncated"):
        _pair(tmp_path, "--json", js, b=trunc)
    assert not js.exists()


def test_truncated_jpeg_message_stands_on_its_own(tmp_path):
    full = tmp_path / "full.jpg"
    cv2.imwrite(str(full), _texture(256, 256))
    trunc = _truncated(full, tmp_path / "trunc.jpg")
    with pytest.raises(ValueError) as err:
        read_any(trunc)
    msg = str(err.value)
    assert "trunc.jpg" in msg and "truncated" in msg and "previous exception" not in msg


def test_truncated_geotiff_message_stands_on_its_own(tmp_path):
    bands = np.stack([_texture(256, 256, s) for s in range(3)])
    full = _geotiff(tmp_path / "full.tif", bands)
    trunc = _truncated(full, tmp_path / "trunc.tif", keep=0.5)
    with pytest.raises(ValueError) as err:
        read_any(trunc)
    msg = str(err.value)
    # GDAL's own reason (which block failed), not rasterio's pointer to an unshown exception
    assert msg.startswith(f"{trunc}: not a readable image (") and "previous exception" not in msg


def test_tiff_that_pil_cannot_decode_still_goes_to_rasterio(tmp_path):
    bands = np.stack([_texture(64, 64, s) for s in range(3)])
    try:
        path = _geotiff(tmp_path / "webp.tif", bands, compress="webp")
    except Exception as err:  # a GDAL built without WebP
        pytest.skip(f"GDAL cannot write WebP-compressed TIFF here: {err}")
    with Image.open(path) as im:
        try:
            im.load()
            pytest.skip("this PIL decodes WebP-compressed TIFF itself")
        except OSError:
            pass
    grey = read_any(path)
    assert grey.shape == (64, 64) and grey.dtype == np.uint8 and grey.std() > 10


def test_empty_file_directory_and_text_are_named(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png: empty file"):
        read_any(empty)
    with pytest.raises(ValueError, match=f"{tmp_path}: is a directory"):
        read_any(tmp_path)
    text = tmp_path / "text.jpg"
    text.write_text("this is not a picture\n")
    with pytest.raises(ValueError, match=r"text\.jpg: not a readable image"):
        read_any(text)


def test_nan_no_data_in_a_float_geotiff_reads_as_zero_without_warnings(tmp_path):
    band = _texture(64, 64).astype(np.float32)
    band[:16] = np.nan
    band[16:20] = np.inf
    path = _geotiff(tmp_path / "nan.tif", band[None])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        grey = read_any(path)
    assert grey.dtype == np.uint8 and (grey[:20] == 0).all() and grey[20:].max() == 255


def test_good_pngs_read_as_before(tmp_path):
    img = _texture(40, 60)
    rgb = np.stack([img, img // 2, 255 - img], axis=-1)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    assert (read_any(path) == np.asarray(Image.fromarray(rgb).convert("L"))).all()


# ----------------------------------------------------------------------------------- pixel limit


def test_pil_limit_is_lifted_only_while_reading(tmp_path, monkeypatch):
    path = _png(tmp_path / "big.png", 100, 80)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 8000 px > 2 x 1000: a "bomb" to PIL
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert read_any(path).shape == (100, 80)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_too_large_image_is_a_clear_error_with_its_size(tmp_path, monkeypatch, suffix):
    img = _texture(100, 80)
    path = tmp_path / f"huge{suffix}"
    if suffix == ".tif":
        _geotiff(path, np.stack([img.astype(np.uint16)] * 4))  # rasterio's path
    else:
        cv2.imwrite(str(path), img)
    monkeypatch.setattr(D, "MAX_PIXELS", 5000)
    with pytest.raises(ValueError, match=rf"huge\{suffix}: 80x100 px \(8,000 pixels\) is more"):
        read_any(path)
    with pytest.raises(SystemExit, match=r"^geolab match pair: .*huge.*5,000"):
        _pair(tmp_path, "--json", tmp_path / "o.json", a=path)


def test_default_limit_is_above_pils():
    assert D.MAX_PIXELS >= 1e9 > 2 * Image.MAX_IMAGE_PIXELS


# ------------------------------------------------------------------------------ too small images


@pytest.mark.parametrize("name", ["sift_ratio", "sift_mnn", "disk_lightglue", "aliked_lightglue"])
@pytest.mark.parametrize("side", [1, 5, 16])
def test_too_small_image_is_not_solved_for_every_matcher(tmp_path, name, side):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(tiny)
    js, pic = tmp_path / "o.json", tmp_path / "m.png"
    argv = ["pair", str(_png(tmp_path / "a.png")), str(tiny), "--matcher", name,
            "--json", str(js), "--out", str(pic)]  # fmt: skip
    if "lightglue" in name:
        argv += ["--device", "cpu", "--max-keypoints", "64"]
    assert match_cli(argv) == 0
    result = json.loads(js.read_text())
    assert result["status"] == (
        f"{tiny} too small to match: {side}x{side} px; the matchers need both sides of at "
        f"least {MIN_SIDE} px"
    )
    assert result["homography"] is None and result["matches"] == 0
    assert pic.read_bytes()[:4] == b"\x89PNG"


def test_resize_that_makes_images_too_small_is_not_solved(tmp_path):
    js = tmp_path / "o.json"
    assert _pair(tmp_path, "--resize", "16", "--json", js, "--rotation-search") == 0
    status = json.loads(js.read_text())["status"]
    assert status.endswith(f"too small to match: 96x96 px (resized to 16x16 px); the "
                           f"matchers need both sides of at least {MIN_SIDE} px")  # fmt: skip


def test_too_small_names_the_image_and_looks_at_what_the_matcher_sees():
    ok, thin = np.zeros((40, 40), np.uint8), np.zeros((31, 400), np.uint8)
    assert too_small(ok, ok) is None
    assert too_small(ok, thin).startswith("image 1 too small to match: 400x31 px;")
    assert too_small(ok, ok, resize=200) is None
    assert "400x31 px (resized to 40x3 px);" in too_small(thin, ok, resize=40, names=("A", "B"))


def _tiny_pair(side):
    img = _texture(side, side)
    return {"id": f"t{side}", "image0": img, "image1": img, "H": np.eye(3),
            "valid0": np.ones_like(img, bool), "valid1": np.ones_like(img, bool)}  # fmt: skip


def test_pipeline_scores_a_too_small_pair_as_unsolved():
    from geolab.match.evaluate import RobustParams
    from geolab.match.matchers import build_matcher
    from geolab.match.pipeline import rotation_sweep, run_benchmark

    disk = build_matcher("disk_lightglue", max_keypoints=64, device="cpu")
    robust = RobustParams()
    rows = run_benchmark([_tiny_pair(8), _tiny_pair(64)], {"disk": disk}, robust)["disk"]
    assert rows[0]["status"].startswith("image 0 too small to match: 8x8 px")
    assert rows[0]["corner_error"] == math.inf and rows[0]["matches"] == 0
    assert not rows[1]["status"].startswith("image 0 too small")
    sweep = rotation_sweep(_tiny_pair(12), {"disk": disk}, [0.0, 90.0], robust, True)
    assert sweep["disk+rot_search"][90.0]["corner_error"] == math.inf


def test_pipeline_scores_a_large_enough_pair_as_score_pair_does():
    from geolab.match.evaluate import RobustParams, score_pair
    from geolab.match.matchers import build_matcher
    from geolab.match.pipeline import score_or_unsolved

    sift, pair = build_matcher("sift_ratio"), _tiny_pair(96)
    a, b = score_pair(sift, pair, RobustParams()), score_or_unsolved(sift, pair, RobustParams())
    assert a.keys() == b.keys()
    for key in a.keys() - {"ms"}:
        assert np.array_equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------- output paths


def test_json_that_is_a_directory_fails_before_any_work(tmp_path):
    pic = tmp_path / "m.png"
    with pytest.raises(SystemExit, match=f"^geolab match pair: {tmp_path}: is a directory"):
        _pair(tmp_path, "--json", tmp_path, "--out", pic)
    assert not pic.exists()


def test_out_that_is_a_directory_fails_before_any_work(tmp_path):
    (tmp_path / "pics").mkdir()
    js = tmp_path / "o.json"
    with pytest.raises(SystemExit, match=r"pics: is a directory"):
        _pair(tmp_path, "--json", js, "--out", tmp_path / "pics")
    assert not js.exists()


@pytest.mark.parametrize("name", ["m.txt", "noext", "m.json"])
def test_out_without_a_picture_suffix_fails_and_writes_nothing(tmp_path, name):
    js, out = tmp_path / "o.json", tmp_path / name
    with pytest.raises(SystemExit, match=r"--out must end in a picture suffix, one of \.png"):
        _pair(tmp_path, "--json", js, "--out", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_outputs_are_checked_before_the_inputs_are_read(tmp_path):
    with pytest.raises(SystemExit, match=r"m\.txt: --out must end"):
        _pair(tmp_path, "--out", tmp_path / "m.txt", a=tmp_path / "not_there.png")


def test_out_under_a_file_and_same_path_for_both(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit, match=r"cannot create it, .*f is a file"):
        _pair(tmp_path, "--out", tmp_path / "f" / "m.png")
    same = tmp_path / "m.png"
    with pytest.raises(SystemExit, match=r"--out and --json name the same file"):
        _pair(tmp_path, "--out", same, "--json", same)


@pytest.mark.parametrize("suffix, magic", [(".jpg", b"\xff\xd8"), (".PDF", b"%PDF"),
                                           (".svg", b"<?xml")])  # fmt: skip
def test_picture_format_follows_the_suffix_and_leaves_no_temporary_file(tmp_path, suffix, magic):
    out = tmp_path / f"m{suffix}"
    assert _pair(tmp_path, "--out", out) == 0
    assert out.read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", out.name]


def test_failed_picture_leaves_old_files_alone_and_writes_no_json(tmp_path, monkeypatch):
    from geolab.match import figures

    out, js = tmp_path / "m.png", tmp_path / "o.json"
    out.write_bytes(b"old picture")

    def broken(*args, **kwargs):
        raise ValueError("cannot draw")

    monkeypatch.setattr(figures, "match_lines", broken)
    with pytest.raises(SystemExit, match="^geolab match pair: cannot draw$"):
        _pair(tmp_path, "--out", out, "--json", js)
    assert out.read_bytes() == b"old picture" and not js.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "m.png"]


# ------------------------------------------------------------------------------------ one line


def test_errors_print_one_line_and_exit_non_zero(tmp_path):
    trunc = _truncated(_png(tmp_path / "full.png", 256, 256), tmp_path / "trunc.png")
    cmd = [sys.executable, "-m", "geolab.cli", "match", "pair", str(trunc), str(trunc),
           "--matcher", "sift_ratio", "--out", str(tmp_path / "m.png")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"geolab match pair: {trunc}: truncated or corrupt PNG image, cannot decode it "
        "(image file is truncated)"
    ]
    assert not (tmp_path / "m.png").exists()
