"""match stages on a tiny sample, and `geolab match pair`."""

import json

import cv2
import numpy as np
import pytest
import yaml

from geolab.match.cli import main as match_cli
from geolab.match.data import read_any

SRC = "data/sentinel2/T36UYA"


def _tiny_sample(root):
    """Three real dates of T36UYA cut to 256 px (names as in the sample)."""
    out = root / "sentinel2" / "T36UYA"
    out.mkdir(parents=True)
    for name in ("T36UYA_20160621T084012_TCI.jpg", "T36UYA_20160830T083602_TCI.jpg",
                 "T36UYA_20190616T083601_TCI.jpg"):  # fmt: skip
        img = cv2.imread(f"{SRC}/{name}", cv2.IMREAD_GRAYSCALE)[256:512, 256:512]
        cv2.imwrite(str(out / name), img)
    return root / "sentinel2"


def test_stages_smoke(tmp_path, run_stage):
    data = _tiny_sample(tmp_path)
    match = {
        "pairs": {"size": 192, "per_category": 1, "max_rotation_deg": 10.0, "eolearn_pairs": 0},
        "augmented_pairs": 1,
        "matchers": ["sift_ratio", "superpoint_lightglue"],
        "rotation_matchers": ["sift_mnn"],
        "rotation_angles": [0.0, 90.0],
        "figure_pairs": 2,
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"device": "cpu"}, "match": match}))
    scenes, pairs, live = tmp_path / "scenes", tmp_path / "pairs", tmp_path / "live"
    run_stage("match_fetch", "--params", params, "--data", data, "--out", scenes,
              "--stats", tmp_path / "f.json")  # fmt: skip
    manifest = json.loads((scenes / "manifest.json").read_text())
    assert [s["date"] for s in manifest["scenes"]] == ["2016-06-21", "2016-08-30", "2019-06-16"]
    run_stage("match_pairs", "--params", params, "--scenes", scenes, "--out", pairs,
              "--stats", tmp_path / "p.json")  # fmt: skip
    stats = json.loads((tmp_path / "p.json").read_text())
    # 3 dates: one same-season pair, two cross-year pairs (one kept), no cross-season to augment
    assert stats["per_category"] == {"same_season": 1, "cross_year": 1}
    run_stage("match_evaluate", "--params", params, "--pairs", pairs, "--live", live)
    metrics = json.loads((live / "metrics.json").read_text())
    assert set(metrics) == {"sift_ratio"}
    assert 0 <= metrics["sift_ratio"]["all"]["auc@5px"] <= 1
    per_pair = json.loads((live / "per_pair.json").read_text())
    assert "non-commercial" in per_pair["skipped"]["superpoint_lightglue"]
    sweep = json.loads((live / "rotation_sweep.json").read_text())["sweep"]
    assert set(sweep) == {"sift_mnn", "sift_mnn+rot_search"}
    for name in ("matches_sift_ratio.png", "corner_error_curves.png", "rotation_sweep_inliers.png"):
        assert (live / "plots/images" / name).stat().st_size > 0


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_pair_cli(tmp_path, capsys):
    import rasterio

    img = cv2.imread(f"{SRC}/T36UYA_20160621T084012_TCI.jpg", cv2.IMREAD_GRAYSCALE)[:480, :480]
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), img[:400, :400])
    b = tmp_path / "b.tif"  # a 3-band uint16 GeoTIFF, shifted by (12, 20) px
    shifted = img[20:420, 12:412].astype(np.uint16) * 40
    with rasterio.open(
        b, "w", driver="GTiff", width=400, height=400, count=3, dtype="uint16"
    ) as ds:
        ds.write(np.stack([shifted] * 3))
    assert read_any(b).dtype == np.uint8
    out, js = tmp_path / "m.png", tmp_path / "m.json"
    argv = ["pair", str(a), str(b), "--matcher", "sift_ratio", "--out", str(out), "--json", str(js)]
    assert match_cli(argv) == 0
    result = json.loads(js.read_text())
    H = np.array(result["homography"])
    assert result["inliers"] >= 8 and np.allclose(H[:2, 2], [-12, -20], atol=1.5)
    assert out.stat().st_size > 0 and '"matcher": "sift_ratio"' in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not_there.png: file not found"):
        match_cli(["pair", str(tmp_path / "not_there.png"), str(b), "--json", str(js)])
    with pytest.raises(SystemExit, match="unknown"):
        match_cli(["pair", str(a), str(b), "--matcher", "nope", "--json", str(js)])


def test_pair_cli_blank_images_say_why(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 80), 128, np.uint8))
    js = tmp_path / "b.json"
    assert (
        match_cli(["pair", str(blank), str(blank), "--matcher", "sift_mnn", "--json", str(js)]) == 0
    )
    result = json.loads(js.read_text())
    assert result["status"] == "too few matches (0)" and result["homography"] is None
