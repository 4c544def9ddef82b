"""geoloc_fetch (offline sample) and geoloc_grid on a tiny run."""

import json

import yaml

from geolab.geoloc.dataset import read_dataset
from geolab.geoloc.grid import load_grid


def test_fetch_and_grid_stages(tmp_path, run_stage):
    geoloc = {"sample": {"count": 40, "size": 16}, "grid": {"cells": 6}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"device": "cpu", "seed": 3}, "geoloc": geoloc}))
    dataset, out = tmp_path / "dataset", tmp_path / "grid"
    run_stage("geoloc_fetch", "--params", params, "--data", "data/croatia", "--out", dataset,
              "--stats", tmp_path / "fetch.json")  # fmt: skip
    records, report = read_dataset(dataset)
    assert len(records) == 40 and sum(report["skipped"].values()) == 0
    run_stage("geoloc_grid", "--params", params, "--dataset", dataset, "--boundary",
              "data/croatia/ne_10m_admin0_HRV.geojson", "--out", out)  # fmt: skip
    stats = json.loads((out / "stats.json").read_text())
    assert stats["places"] == {"val": 6, "test": 6, "train": 28}
    labels = json.loads((out / "labels.json").read_text())
    places = labels["places"]
    assert len(places) == 40 and {p["split"] for p in places.values()} == {"train", "val", "test"}
    train_u = [p["u"] for p in places.values() if p["split"] == "train"]
    assert min(train_u) == 0.0 and max(train_u) == 1.0  # normaliser fitted on train only
    grid = load_grid(out / "grid.gpkg")
    assert len(grid) == stats["cells"] and grid["n_train"].sum() <= 28
    assert {p["cell"] for p in places.values()} <= set(grid["cell_id"])
    assert (out / "grid.png").stat().st_size > 0
