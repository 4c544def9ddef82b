import os
import runpy
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def run_stage(monkeypatch):
    """Run ``stages/<name>.py`` in-process as ``__main__`` with the given arguments."""

    def run(name: str, *args: str) -> None:
        monkeypatch.setattr(sys, "argv", [f"stages/{name}.py", *map(str, args)])
        runpy.run_path(str(ROOT / "stages" / f"{name}.py"), run_name="__main__")

    return run
