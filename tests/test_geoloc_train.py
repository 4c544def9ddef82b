"""geoloc training, evaluation and prediction: units on hand-made inputs, then a tiny real run.

The tiny run goes through the stage scripts (geoloc_fetch -> geoloc_grid -> geoloc_train ->
geoloc_evaluate) once per module and then drives ``geolab geoloc predict`` on a copy of some of
its test places written as a competition test set (no coordinates).
"""

import csv
import json
import math
import runpy
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.figure import Figure
from torch import nn

from geolab.common.train import CheckpointSpec, TrainConfig, fit
from geolab.geoloc.config import GeolocParams
from geolab.geoloc.dataset import read_dataset
from geolab.geoloc.evaluate import (
    WITHIN_KM,
    baselines,
    distance_metrics,
    errors_km,
    histogram_figure,
    map_figure,
)
from geolab.geoloc.geo import EARTH_RADIUS_KM, Normaliser, Projector, haversine_km
from geolab.geoloc.grid import load_grid
from geolab.geoloc.model import GeolocNet
from geolab.geoloc.predict import Geolocator, write_submission
from geolab.geoloc.train import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PREDICTORS,
    Decoder,
    Places,
    ViewsDataset,
    choose_predictor,
    infer,
    load_places,
    make_evaluate,
    make_step,
    model_kwargs,
    normalise_views,
    predictor_name,
    set_checkpoint_extra,
    soft_targets,
)

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = ROOT / "data" / "croatia" / "ne_10m_admin0_HRV.geojson"
ZAGREB = (45.815, 15.982)
SPLIT = (43.508, 16.440)
HALF_DEGREE_KM = EARTH_RADIUS_KM * math.radians(0.5)  # 0.5 degree of a meridian
VALID = "cells_centroid, cells_clipped, cells_weighted, regression, blend"


# --------------------------------------------------------------------------- soft targets


# three cell points on the meridian 16 E, half a degree apart
POINTS_LL = np.array([[45.0, 16.0], [45.5, 16.0], [46.0, 16.0]])


def test_soft_targets_tau_zero_is_one_hot():
    t = soft_targets(np.array([45.0, 45.9]), np.array([16.0, 16.0]), np.array([2, 1]), POINTS_LL, 0)
    np.testing.assert_array_equal(t, [[0, 0, 1], [0, 1, 0]])
    assert t.dtype == np.float32


def test_soft_targets_follow_the_haversine_distance():
    tau = 50.0
    lat, lon, cell = np.array([45.0, 45.5]), np.array([16.0, 16.0]), np.array([0, 0])
    t = soft_targets(lat, lon, cell, POINTS_LL, tau)
    assert t.shape == (2, 3) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    # place 0 sits on its own cell's point: weights exp(-d / tau) for d = 0, h, 2h
    w = np.exp(-np.array([0, 1, 2]) * HALF_DEGREE_KM / tau)
    np.testing.assert_allclose(t[0], w / w.sum(), rtol=1e-5)
    assert t[0, 0] == t[0].max() and t[0, 0] > t[0, 1] > t[0, 2]
    # place 1 is labelled cell 0 but lies on cell 1's point: the nearer cell gets more credit
    w = np.exp(-np.array([1, 0, 1]) * HALF_DEGREE_KM / tau)
    np.testing.assert_allclose(t[1], w / w.sum(), rtol=1e-5)
    assert t[1, 1] > t[1, 0] and t[1, 0] == pytest.approx(t[1, 2], rel=1e-5)


def test_soft_targets_limits_are_finite():
    lat, lon, cell = np.array([45.0]), np.array([16.0]), np.array([0])
    sharp = soft_targets(lat, lon, cell, POINTS_LL, 1e-3)
    np.testing.assert_allclose(sharp, [[1, 0, 0]], atol=1e-12)
    flat = soft_targets(lat, lon, cell, POINTS_LL, 1e9)
    np.testing.assert_allclose(flat, [[1 / 3] * 3], rtol=1e-5)


# --------------------------------------------------------------------------- views


def test_normalise_views_moves_channels_and_normalises():
    views = np.zeros((2, 4, 5, 6, 3), np.uint8)
    views[1, 2, 1, 3, 0] = 255  # place 1, south view, row 1, column 3, red
    x = normalise_views(views)
    assert x.shape == (2, 4, 3, 5, 6) and x.dtype == torch.float32
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    assert x[1, 2, 0, 1, 3].item() == pytest.approx((1 - mean[0]) / std[0], rel=1e-6)
    background = torch.tensor(-mean / std, dtype=torch.float32).reshape(3, 1, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, 2, 0, 1, 3] = False
    assert torch.allclose(x[mask], background.expand_as(x)[mask], atol=1e-6)


def test_views_dataset_matches_normalise_views_and_jitters_per_photo():
    rng = np.random.default_rng(0)
    views = rng.integers(20, 100, size=(3, 4, 8, 8, 3), dtype=np.uint8)
    targets = np.eye(5, dtype=np.float32)[[0, 3, 4]]
    uv = rng.random((3, 2)).astype(np.float32)
    plain = ViewsDataset(views, targets, uv, jitter=0.0)
    assert len(plain) == 3
    x, t, u = plain[1]
    torch.testing.assert_close(x, normalise_views(views)[1])
    assert torch.equal(t, torch.from_numpy(targets[1])) and torch.equal(u, torch.from_numpy(uv[1]))
    torch.manual_seed(0)
    x, _, _ = ViewsDataset(views, targets, uv, jitter=0.5)[2]
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    raw = torch.from_numpy(views[2]).permute(0, 3, 1, 2).float() / 255
    gain = (x * std + mean) / raw  # pixels <= 100/255, so a gain <= 1.5 never clamps
    per_photo = gain.flatten(1)
    assert torch.allclose(per_photo, per_photo[:, :1].expand_as(per_photo), atol=1e-4)
    assert ((per_photo[:, 0] >= 0.5 - 1e-6) & (per_photo[:, 0] <= 1.5 + 1e-6)).all()
    assert len(set(per_photo[:, 0].round(decimals=4).tolist())) == 4  # one gain per photo


def test_infer_is_batch_independent_and_in_eval_mode():
    torch.manual_seed(0)
    model = GeolocNet(num_cells=3, weights="none", hidden=8, dropout=0.5).train()
    views = np.random.default_rng(1).integers(0, 256, size=(5, 4, 32, 32, 3), dtype=np.uint8)
    logits, uv = infer(model, views, batch_size=2)
    assert not model.training
    assert logits.shape == (5, 3) and uv.shape == (5, 2) and logits.dtype == np.float32
    again, uv_again = infer(model, views, batch_size=5)
    np.testing.assert_allclose(logits, again, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(uv, uv_again, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        direct = model(normalise_views(views))
    np.testing.assert_allclose(logits, direct["logits"].numpy(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- decoder


def _decoder(kind: str = "clipped") -> Decoder:
    norm = Normaliser.from_dict(
        {"x_min": 300_000.0, "x_max": 700_000.0, "y_min": 4_700_000.0, "y_max": 5_100_000.0}
    )
    base = np.array([[400_000.0, 5_000_000.0], [500_000.0, 4_800_000.0]])
    points = {
        "centroid": base,
        "clipped": base + [10_000.0, 0.0],
        "weighted": base + [0.0, 20_000.0],
    }
    return Decoder(points, norm, kind)


def test_decoder_regression_inverts_the_normaliser():
    dec = _decoder()
    uv = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.5]])
    xy = dec.xy(np.zeros((3, 2)), uv, "regression")
    np.testing.assert_allclose(xy, [[300e3, 4700e3], [700e3, 5100e3], [400e3, 4900e3]])


def test_decoder_cells_and_blend():
    dec = _decoder("clipped")
    logits = np.array([[0.0, 80.0]])  # all the probability on cell 1
    uv = np.array([[0.25, 0.5]])  # regression: (400 km, 4900 km)
    for kind, point in dec.points.items():
        np.testing.assert_allclose(dec.xy(logits, uv, f"cells_{kind}"), point[[1]], atol=1e-6)
    blend = dec.xy(logits, uv, "blend")  # the mean of regression and the *clipped* cell point
    np.testing.assert_allclose(blend, [[(400e3 + 510e3) / 2, (4900e3 + 4800e3) / 2]], atol=1e-6)
    weighted = _decoder("weighted").xy(logits, uv, "blend")
    np.testing.assert_allclose(weighted, [[(400e3 + 500e3) / 2, (4900e3 + 4820e3) / 2]], atol=1e-6)
    ll = dec.latlon(logits, uv, "blend")
    lat, lon = Projector().to_latlon(blend[:, 0], blend[:, 1])
    np.testing.assert_allclose(ll, np.stack([lat, lon], 1), atol=1e-9)
    plat, plon = dec.latlon_points("weighted")
    assert plat.shape == plon.shape == (2,)
    np.testing.assert_allclose(Projector().to_xy(plat, plon), dec.points["weighted"].T, atol=1e-3)


@pytest.mark.parametrize("name", ["cells_nope", "cells", "nearest", ""])
def test_decoder_rejects_unknown_predictor(name):
    with pytest.raises(ValueError, match=VALID):
        _decoder().xy(np.zeros((1, 2)), np.zeros((1, 2)), name)


def test_predictors_cover_every_point_kind():
    assert PREDICTORS == (
        "cells_centroid",
        "cells_clipped",
        "cells_weighted",
        "regression",
        "blend",
    )


# --------------------------------------------------------------------------- step, evaluate


class _Fixed(nn.Module):
    """Returns the given outputs for place ``i``, read back from its views' pixel value 50 i."""

    def __init__(self, logits, uv):
        super().__init__()
        self.logits, self.uv = torch.as_tensor(logits).float(), torch.as_tensor(uv).float()

    def forward(self, views):
        if views.ndim == 5:  # normalised views: undo to the pixel value
            red = views[:, 0, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
            idx = (red * 255 / 50).round().long()
            return {"logits": self.logits[idx], "uv": self.uv[idx]}
        return {"logits": self.logits, "uv": self.uv}


def test_step_is_cross_entropy_plus_weighted_mse():
    model = _Fixed(torch.tensor([[math.log(3.0), 0.0]] * 2), torch.zeros(2, 2))
    target = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    uv = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    out = make_step(reg_weight=2.0)(model, (torch.zeros(2), target, uv))
    # probabilities 3/4, 1/4: CE = ln 4 for row 0, -(ln 0.75 + ln 0.25) / 2 for row 1
    ce = (math.log(4) - (math.log(0.75) + math.log(0.25)) / 2) / 2
    mse = (1 + 1 + 0 + 4) / 4
    assert out["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out["mse"].item() == pytest.approx(mse, rel=1e-6)
    assert out["loss"].item() == pytest.approx(ce + 2 * mse, rel=1e-6)


def _two_places():
    """Zagreb (cell 0) and Split (cell 1) with a decoder whose cell points are those cities."""
    proj = Projector()
    lat, lon = np.array([ZAGREB[0], SPLIT[0]]), np.array([ZAGREB[1], SPLIT[1]])
    x, y = proj.to_xy(lat, lon)
    xy = np.stack([x, y], 1)
    norm = Normaliser().fit(x, y)
    u, v = norm.transform(x, y)
    views = np.zeros((2, 4, 4, 4, 3), np.uint8)
    views[1] = 50
    places = Places(["a", "b"], views, lat, lon, np.array([0, 1]), np.stack([u, v], 1))
    return places, Decoder({k: xy for k in ("centroid", "clipped", "weighted")}, norm)


def test_make_evaluate_scores_every_predictor():
    places, dec = _two_places()
    d = float(haversine_km(*ZAGREB, *SPLIT))
    # the cell head says "Zagreb" for both; the x/y head is exact
    model = _Fixed([[50.0, 0.0], [50.0, 0.0]], places.uv)
    out = make_evaluate(places, dec, "auto", "cpu", batch_size=1)(model)
    assert set(out) == {*(f"km/{p}" for p in PREDICTORS), "mean_km", "cell_accuracy", "reg_mse"}
    for kind in ("centroid", "clipped", "weighted"):
        assert out[f"km/cells_{kind}"] == pytest.approx(d / 2, rel=1e-6)
    assert out["km/regression"] == pytest.approx(0.0, abs=1e-6)
    assert out["km/blend"] == pytest.approx(d / 4, rel=0.01)  # halfway, for Split only
    assert out["mean_km"] == out["km/regression"]  # auto: the best
    assert out["cell_accuracy"] == 0.5 and out["reg_mse"] == pytest.approx(0.0, abs=1e-10)
    named = make_evaluate(places, dec, "cells_clipped", "cpu", batch_size=2)(model)
    assert named["mean_km"] == pytest.approx(d / 2, rel=1e-6)


# --------------------------------------------------------------------------- small helpers


def test_choose_predictor():
    km = {"regression": 3.0, "cells_weighted": 1.0, "blend": 1.0, "cells_clipped": 2.0}
    assert choose_predictor(km, "auto") == "blend"  # tie on 1.0: the first by name
    assert choose_predictor(km, "cells_clipped") == "cells_clipped"  # not the best, but asked for
    with pytest.raises(ValueError, match="unknown predictor 'cells'"):
        choose_predictor(km, "cells")


def test_predictor_name_and_model_kwargs():
    params = GeolocParams()
    params.grid.centroid = "clipped"
    for predict, name in (("cells", "cells_clipped"), ("blend", "blend"), ("auto", "auto")):
        params.predict = predict
        assert predictor_name(params) == name
    params.backbone, params.weights, params.pooling = "torchvision:resnet18", "none", "max"
    params.hidden, params.dropout = 12, 0.0
    kw = model_kwargs(params)
    assert kw == {
        "backbone": "torchvision:resnet18",
        "weights": "none",
        "pooling": "max",
        "hidden": 12,
        "dropout": 0.0,
    }
    model = GeolocNet(num_cells=2, **kw)
    assert model.pooling == "max" and model.cell_head.in_features == 12


def test_set_checkpoint_extra_adds_keys(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"format": "x", "state_dict": {"w": torch.ones(2)}, "extra": {"a": 1}}, path)
    set_checkpoint_extra(path, b=[1.5, 2.5], a=2)
    blob = torch.load(path, weights_only=True)
    assert blob["extra"] == {"a": 2, "b": [1.5, 2.5]}
    assert blob["format"] == "x" and torch.equal(blob["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_fit_calls_on_epoch_before_each_epoch(tmp_path):
    events = []
    model = nn.Linear(2, 1)
    loader = [(torch.ones(4, 2), torch.zeros(4, 1))] * 2

    def step(m, batch):
        events.append("step")
        x, y = batch
        return {"loss": ((m(x) - y) ** 2).mean()}

    def on_epoch(m, epoch):
        assert m is model and m.training
        events.append(epoch)

    cfg = TrainConfig(epochs=3, monitor="train/loss", resume=False, amp=False, scheduler="constant")
    spec = CheckpointSpec(tmp_path / "m.pt", "linear", {})
    fit(model, loader, cfg, step, spec, on_epoch=on_epoch)
    assert events == [1, "step", "step", 2, "step", "step", 3, "step", "step"]


# --------------------------------------------------------------------------- evaluation


def test_distance_metrics_on_known_errors():
    m = distance_metrics(np.array([0.5, 1.0, 10.0, 30.0, 300.0]))
    assert m["mean_km"] == pytest.approx(341.5 / 5) and m["median_km"] == 10.0
    # thresholds are inclusive: 1.0 km counts as within 1 km
    assert (m["within_1km"], m["within_25km"], m["within_200km"]) == (40.0, 60.0, 80.0)
    assert set(m) == {"mean_km", "median_km", *(f"within_{t:g}km" for t in WITHIN_KM)}
    for bad in ([], [1.0, np.nan], [np.inf]):
        with pytest.raises(ValueError, match="non-empty array of finite values"):
            distance_metrics(np.array(bad))


def test_errors_km_on_known_distances():
    true = np.array([[45.0, 16.0], [45.5, 16.0], [46.0, 16.0]])
    km = errors_km(true, np.array([[45.5, 16.0], [45.5, 16.0], [45.0, 16.0]]))
    np.testing.assert_allclose(km, [HALF_DEGREE_KM, 0.0, 2 * HALF_DEGREE_KM], rtol=1e-9)
    one = errors_km(true, np.array([45.5, 16.0]))  # a constant prediction broadcasts
    np.testing.assert_allclose(one, [HALF_DEGREE_KM, 0.0, HALF_DEGREE_KM], rtol=1e-9)
    # along a parallel: a degree of longitude is cos(lat) shorter (small angle, ~sphere)
    east = errors_km(np.array([[45.0, 16.0]]), np.array([[45.0, 16.01]]))
    expected = EARTH_RADIUS_KM * math.radians(0.01) * math.cos(math.radians(45.0))
    assert east[0] == pytest.approx(expected, rel=1e-6)


def test_baselines_mean_position_and_most_common_cell():
    points = np.array([[45.0, 14.0], [44.0, 15.0], [43.0, 17.0]])
    train = np.array([[45.3, 15.9]] * 4)
    out = baselines(train, np.array([2, 2, 0, 1]), points)
    np.testing.assert_allclose(out["train_mean"], [45.3, 15.9], atol=1e-9)  # all the same place
    np.testing.assert_array_equal(out["common_cell"], points[2])
    tie = baselines(train, np.array([1, 2, 1, 2]), points)
    np.testing.assert_array_equal(tie["common_cell"], points[1])  # tie: the lowest id
    two = baselines(np.array([[45.0, 16.0], [46.0, 16.0]]), np.array([0, 0]), points)
    lat, lon = two["train_mean"]
    assert lat == pytest.approx(45.5, abs=0.01) and lon == pytest.approx(16.0, abs=0.01)
    assert set(out) == {"train_mean", "common_cell"} and out["train_mean"].shape == (2,)


def test_figures_draw_the_places_and_the_errors():
    import shapely

    from geolab.geoloc.geo import read_polygons

    true = np.array([[45.0, 16.0], [45.5, 16.0], [43.5, 16.4]])
    pred = np.array([[45.5, 16.0], [45.5, 16.0], [45.8, 16.0]])
    fig = map_figure(read_polygons(BOUNDARY), true, pred, "t", max_lines=2)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "t"
    lines = fig.axes[0].collections[-3]  # error lines, then true and predicted scatters
    assert len(lines.get_segments()) == 2  # max_lines
    np.testing.assert_allclose(lines.get_array(), [HALF_DEGREE_KM, 0.0], atol=1e-6)
    fig = map_figure(shapely.box(13, 42, 20, 47), true, pred, "box")
    assert len(fig.axes[0].collections[-3].get_segments()) == 3
    hist = histogram_figure({"model": np.array([1.0, 3.0]), "baseline": np.array([10.0])})
    labels = [t.get_text() for t in hist.axes[0].get_legend().get_texts()]
    assert labels == ["model (mean 2.0 km)", "baseline (mean 10.0 km)"]


def test_write_submission_format_and_atomicity(tmp_path):
    out = tmp_path / "sub.csv"
    write_submission(out, ["a", "b"], np.array([[45.123456789, 16.0], [43.0, 17.5]]))
    assert out.read_text().splitlines() == [
        "uuid,latitude,longitude",
        "a,45.1234568,16.0000000",
        "b,43.0000000,17.5000000",
    ]
    before = out.read_text()
    with pytest.raises(ValueError, match="2 uuids but 1 positions"):
        write_submission(out, ["a", "b"], np.array([[45.0, 16.0]]))
    with pytest.raises(ValueError):  # fails half-way: "x" is no number
        write_submission(out, ["a", "b"], [(45.0, 16.0), (45.0, "x")])
    assert out.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv"]


# --------------------------------------------------------------------------- a tiny real run


def _run_stage(name: str, *args) -> None:
    """Like conftest's ``run_stage``, usable from a module-scoped fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", [f"stages/{name}.py", *map(str, args)])
        runpy.run_path(str(ROOT / "stages" / f"{name}.py"), run_name="__main__")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """fetch (40 places) -> grid (~6 cells) -> train (2 epochs, 1 frozen) -> evaluate."""
    tmp = tmp_path_factory.mktemp("geoloc_run")
    geoloc = {
        "sample": {"count": 40, "size": 16},
        "grid": {"cells": 6, "centroid": "weighted"},
        "backbone": "efficientnet_lite0",
        "weights": "none",
        "hidden": 16,
        "image_size": 32,
        "batch_size": 8,
        "epochs": 2,
        "freeze_epochs": 1,
        "label_smoothing_km": 40.0,
        "scheduler": "constant",
        "predict": "auto",
    }
    params = tmp / "params.yaml"
    base = {"device": "cpu", "seed": 3, "threads": 1}
    params.write_text(yaml.safe_dump({"base": base, "geoloc": geoloc}))
    r = types.SimpleNamespace(
        params=params,
        dataset=tmp / "dataset",
        grid=tmp / "grid",
        model=tmp / "models" / "model.pt",
        live=tmp / "train",
        out=tmp / "evaluate",
        freeze_calls=[],
    )
    original = GeolocNet.freeze_backbone

    def spy(self, frozen):
        original(self, frozen)
        r.freeze_calls.append((frozen, self.training, self.backbone.training))

    _run_stage("geoloc_fetch", "--params", params, "--data", ROOT / "data" / "croatia",
               "--out", r.dataset, "--stats", tmp / "fetch.json")  # fmt: skip
    _run_stage("geoloc_grid", "--params", params, "--dataset", r.dataset, "--boundary", BOUNDARY,
               "--out", r.grid)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GeolocNet, "freeze_backbone", spy)
        _run_stage("geoloc_train", "--params", params, "--dataset", r.dataset, "--grid", r.grid,
                   "--model", r.model, "--live", r.live)  # fmt: skip
    _run_stage("geoloc_evaluate", "--params", params, "--dataset", r.dataset, "--grid", r.grid,
               "--model", r.model, "--boundary", BOUNDARY, "--train-live", r.live,
               "--out", r.out)  # fmt: skip
    torch.set_num_threads(1)
    r.labels = json.loads((r.grid / "labels.json").read_text())
    r.split = {
        s: sorted(u for u, p in r.labels["places"].items() if p["split"] == s)
        for s in ("train", "val", "test")
    }
    r.records = {rec.uuid: rec for rec in read_dataset(r.dataset)[0]}
    r.ckpt = torch.load(r.model, map_location="cpu", weights_only=True)
    return r


def test_run_checkpoint_is_self_describing(run):
    extra = run.ckpt["extra"]
    grid = load_grid(run.grid / "grid.gpkg")
    assert run.ckpt["model_name"] == "geoloc_net" and run.ckpt["model_kwargs"]["weights"] == "none"
    assert run.ckpt["model_kwargs"]["num_cells"] == len(grid)
    assert set(extra["points"]) == {"centroid", "clipped", "weighted"}
    np.testing.assert_allclose(extra["points"]["weighted"], grid[["weighted_x", "weighted_y"]])
    assert extra["normaliser"] == run.labels["normaliser"]
    assert extra["image_size"] == 32 and extra["centroid"] == "weighted"
    assert extra["predict"] == "auto"
    # the chosen predictor is the best on validation, at the best epoch
    val_km = extra["val_km"]
    assert set(val_km) == set(PREDICTORS) and all(math.isfinite(v) for v in val_km.values())
    assert extra["predictor"] in PREDICTORS
    assert val_km[extra["predictor"]] == min(val_km.values())
    assert run.ckpt["metrics"]["val/mean_km"] == pytest.approx(min(val_km.values()))
    for p in PREDICTORS:
        assert run.ckpt["metrics"][f"val/km/{p}"] == pytest.approx(val_km[p])
    # the fallback of the predict command is the mean of the *training* places
    train = run.split["train"]
    from geolab.geoloc.geo import mean_position

    lat = [run.records[u].lat for u in train]
    lon = [run.records[u].lon for u in train]
    np.testing.assert_allclose(extra["train_mean"], mean_position(lat, lon), atol=1e-9)
    assert not run.model.with_name("model.last.pt").exists()  # the resume state is cleaned up


def test_run_freezes_the_backbone_for_the_first_epoch_only(run):
    # fit puts the model in train mode, then on_epoch freezes (epoch 1) or unfreezes (epoch 2)
    assert run.freeze_calls == [(True, True, False), (False, True, True)]
    # the frozen epoch runs the backbone in eval mode: its batch norms count no batches then
    n_train = len(run.split["train"])
    batches = n_train // 8 if n_train > 8 else 1  # drop_last when there is more than a batch
    counts = {
        v.item() for k, v in run.ckpt["state_dict"].items()
        if k.startswith("backbone.") and k.endswith("num_batches_tracked")
    }  # fmt: skip
    assert counts == {0 if run.ckpt["epoch"] == 1 else batches}
    if run.ckpt["epoch"] == 1:  # nothing of the backbone moved from its initialisation
        bn = {k: v for k, v in run.ckpt["state_dict"].items() if k.startswith("backbone.bn1.")}
        assert torch.equal(bn["backbone.bn1.weight"], torch.ones_like(bn["backbone.bn1.weight"]))
        assert not bn["backbone.bn1.running_mean"].any()


def test_run_metrics(run):
    metrics = json.loads((run.out / "metrics.json").read_text())
    extra = run.ckpt["extra"]
    chosen = extra["predictor"]
    within = {f"within_{t:g}km" for t in WITHIN_KM}
    test = metrics["test"]
    assert math.isfinite(test["mean_km"]) and test["mean_km"] > 0
    assert set(test) == {"mean_km", "median_km", *within, "cell_accuracy", "ratio_to_train_mean"}
    assert set(metrics["predictors"]) == set(PREDICTORS)
    assert all(set(metrics["predictors"][p]) == {"val", "test"} for p in PREDICTORS)
    assert set(metrics["baselines"]) == {"train_mean", "common_cell"}
    n_test = len(run.split["test"])
    assert test["cell_accuracy"] * n_test == pytest.approx(round(test["cell_accuracy"] * n_test))
    for key in ("mean_km", "median_km", *within):
        assert test[key] == metrics["predictors"][chosen]["test"][key]
        assert metrics["val"][key] == metrics["predictors"][chosen]["val"][key]
    ref = metrics["baselines"]["train_mean"]["test"]["mean_km"]
    assert test["ratio_to_train_mean"] == pytest.approx(test["mean_km"] / ref)
    # evaluate re-scores the saved model on validation: the same km as training logged
    for p in PREDICTORS:
        assert metrics["predictors"][p]["val"]["mean_km"] == pytest.approx(
            extra["val_km"][p], rel=1e-4
        )
    # baselines, recomputed from the training labels and the grid
    true = np.array([[run.records[u].lat, run.records[u].lon] for u in run.split["test"]])
    assert ref == pytest.approx(errors_km(true, np.array(extra["train_mean"])).mean(), rel=1e-9)
    grid = load_grid(run.grid / "grid.gpkg")
    cells = np.array([run.labels["places"][u]["cell"] for u in run.split["train"]])
    common = int(np.argmax(np.bincount(cells, minlength=len(grid))))
    point = grid.loc[grid["cell_id"] == common, ["weighted_lat", "weighted_lon"]].to_numpy()[0]
    assert metrics["baselines"]["common_cell"]["test"]["mean_km"] == pytest.approx(
        errors_km(true, point).mean(), rel=1e-6
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_predictions_and_figures(run):
    rows = _read_csv(run.out / "predictions.csv")
    assert [r["uuid"] for r in rows] == run.split["test"]
    assert list(rows[0]) == [
        "uuid",
        "latitude",
        "longitude",
        "pred_latitude",
        "pred_longitude",
        "km",
    ]
    for r in rows:
        rec = run.records[r["uuid"]]
        assert float(r["latitude"]) == pytest.approx(rec.lat, abs=1e-6)
        assert float(r["longitude"]) == pytest.approx(rec.lon, abs=1e-6)
        d = haversine_km(rec.lat, rec.lon, float(r["pred_latitude"]), float(r["pred_longitude"]))
        assert float(r["km"]) == pytest.approx(float(d), abs=2e-3)
    metrics = json.loads((run.out / "metrics.json").read_text())
    mean = np.mean([float(r["km"]) for r in rows])
    assert mean == pytest.approx(metrics["test"]["mean_km"], abs=1e-3)
    for name in ("map.png", "errors.png", "training_curves.png"):
        assert (run.out / name).stat().st_size > 1000, name


def test_load_places(run):
    labels, n = run.labels, {s: len(ids) for s, ids in run.split.items()}
    test = load_places(run.dataset, labels, "test", 16)
    assert len(test) == n["test"] and test.uuids == run.split["test"]
    assert test.views.shape == (n["test"], 4, 16, 16, 3) and test.views.dtype == np.uint8
    first = labels["places"][test.uuids[0]]
    assert test.cell[0] == first["cell"] and test.uv[0].tolist() == pytest.approx(
        [first["u"], first["v"]]
    )
    assert test.lat[0] == run.records[test.uuids[0]].lat
    half = load_places(run.dataset, labels, "train", 16, frac=0.5, seed=1)
    assert len(half) == round(n["train"] / 2)
    assert half.uuids == sorted(half.uuids) and set(half.uuids) < set(run.split["train"])
    same = load_places(run.dataset, labels, "train", 16, frac=0.5, seed=1)
    assert same.uuids == half.uuids
    tiny = load_places(run.dataset, labels, "train", 16, frac=1e-6)
    assert len(tiny) == 1  # never empty
    ghost = {"places": {**labels["places"], "ghost": {"split": "val", "u": 0, "v": 0, "cell": 0}}}
    with pytest.raises(ValueError, match="rerun geoloc_grid"):
        load_places(run.dataset, ghost, "val", 16)
    with pytest.raises(ValueError, match="split 'holdout' has no places"):
        load_places(run.dataset, labels, "holdout", 16)


def test_geolocator_load_errors(run, tmp_path):
    geo = Geolocator.load(run.model)
    assert geo.predictor == run.ckpt["extra"]["predictor"] and geo.image_size == 32
    assert not geo.model.training
    assert Geolocator.load(run.model, predictor="regression").predictor == "regression"
    with pytest.raises(ValueError, match="unknown predictor 'cells'"):
        Geolocator.load(run.model, predictor="cells")
    blob = dict(run.ckpt)
    blob["extra"] = {k: v for k, v in blob["extra"].items() if k != "points"}
    torch.save(blob, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a geoloc checkpoint"):
        Geolocator.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        Geolocator.load(tmp_path / "none.pt")
    assert geo.predict([]).shape == (0, 2)


def _test_set(run, root: Path, uuids: list[str], missing: str | None, header: str = ",uuid"):
    """A competition test folder: ``data.csv`` without coordinates and the places' photos."""
    for u in uuids:
        shutil.copytree(run.dataset / "images" / u, root / "images" / u)
    if missing is not None:
        (root / "images" / missing / "90.jpg").unlink()
    lines = [header] + [f"{i},{u}" if header.startswith(",") else u for i, u in enumerate(uuids)]
    (root / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_predict_command(run, tmp_path, capsys):
    from geolab.geoloc.cli import main

    uuids = run.split["test"][::-1][:5]  # not in sorted order: output must keep file order
    skipped = uuids[1]
    folder = _test_set(run, tmp_path / "test", uuids, missing=skipped)
    out = tmp_path / "submission.csv"
    assert main(["predict", str(folder), "--out", str(out), "--model", str(run.model)]) == 0
    err = capsys.readouterr().err
    assert f"4 places located with {run.ckpt['extra']['predictor']}" in err
    assert "1 places skipped" in err and skipped in err
    rows = _read_csv(out)
    assert list(rows[0]) == ["uuid", "latitude", "longitude"]
    assert [r["uuid"] for r in rows] == uuids
    got = {r["uuid"]: (float(r["latitude"]), float(r["longitude"])) for r in rows}
    assert got[skipped] == pytest.approx(tuple(run.ckpt["extra"]["train_mean"]), abs=1e-7)
    # the others: the positions geoloc_evaluate predicted for the same photos
    evaluated = {r["uuid"]: r for r in _read_csv(run.out / "predictions.csv")}
    for u in uuids:
        if u != skipped:
            want = (float(evaluated[u]["pred_latitude"]), float(evaluated[u]["pred_longitude"]))
            assert got[u] == pytest.approx(want, abs=2e-6)
    argv = ["predict", str(folder), "--out", str(out), "--model", str(run.model), "--strict"]
    assert main(argv) == 1


def test_predict_command_predictor_override_and_strict_success(run, tmp_path):
    from geolab.cli import main as geolab_main
    from geolab.geoloc.cli import main

    uuids = run.split["val"][:3]
    folder = _test_set(run, tmp_path / "test", uuids, missing=None)
    out = tmp_path / "sub.csv"
    argv = ["geoloc", "predict", str(folder), "--out", str(out), "--model", str(run.model)]
    assert geolab_main([*argv, "--strict", "--predictor", "regression"]) == 0
    got = np.array([[float(r["latitude"]), float(r["longitude"])] for r in _read_csv(out)])
    # regression by hand: the x/y head, un-normalised with the checkpoint's normaliser
    geo = Geolocator.load(run.model)
    views = load_places(run.dataset, run.labels, "val", 32).views[:3]
    _, uv = geo.outputs(views)
    norm = run.ckpt["extra"]["normaliser"]
    x = norm["x_min"] + uv[:, 0] * (norm["x_max"] - norm["x_min"])
    y = norm["y_min"] + uv[:, 1] * (norm["y_max"] - norm["y_min"])
    lat, lon = Projector().to_latlon(x, y)
    np.testing.assert_allclose(got, np.stack([lat, lon], 1), atol=2e-6)
    with pytest.raises(SystemExit, match="unknown predictor 'nope'"):
        main(["predict", str(folder), "--out", str(out), "--model", str(run.model),
              "--predictor", "nope"])  # fmt: skip
    with pytest.raises(SystemExit, match="no trained model"):
        main(["predict", str(folder), "--out", str(out), "--model", str(tmp_path / "x.pt")])
    with pytest.raises(SystemExit, match="data.csv: not found"):
        main(["predict", str(tmp_path), "--out", str(out), "--model", str(run.model)])


def test_predict_command_keeps_file_order_with_a_bom(run, tmp_path):
    from geolab.geoloc.cli import main

    uuids = run.split["test"][:3]
    folder = _test_set(run, tmp_path / "test", uuids, missing=uuids[0], header="uuid")
    csv_path = folder / "data.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())  # as Excel saves UTF-8
    out = tmp_path / "sub.csv"
    assert main(["predict", str(folder), "--out", str(out), "--model", str(run.model)]) == 0
    assert [r["uuid"] for r in _read_csv(out)] == uuids
