"""End to end, as a new user: clone, pull the sample offline, reproduce, gate. Slow (~1 min)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _run(args, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def test_clone_pull_repro_status_gate(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "geolab"
    _run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    _run([BIN / "dvc", "pull", "-q", "data.dvc"], clone)
    assert (clone / "data/dubai/tile_1/images/image_part_001.jpg").exists()
    _run([BIN / "dvc", "repro"], clone)
    status = _run([BIN / "dvc", "status"], clone).stdout
    assert "up to date" in status, status
    assert "didn't change" in _run([BIN / "dvc", "repro"], clone).stdout
    assert _run([BIN / "geolab", "gate"], clone).returncode == 0
    # worsen a gated metric by hand: the gate must fail and name it
    path = clone / "results/cls/evaluate/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test"]["accuracy"] = 0.1
    path.write_text(json.dumps(metrics))
    out = _run([BIN / "geolab", "gate"], clone, check=False)
    assert out.returncode == 1
    assert "cls test accuracy" in out.stdout and "FAIL" in out.stdout
