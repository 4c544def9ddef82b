import os
import runpy
import subprocess
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


def git(repo: Path, *args: str) -> None:
    """Run git in ``repo`` with a throwaway identity."""
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*cmd, *args], cwd=repo, check=True, capture_output=True)


def init_dvc_repo(repo: Path, dvc: list[str]) -> None:
    """``git init`` + ``dvc init`` with analytics off, in ``repo``."""
    git(repo, "init", "-q")
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, capture_output=True)
    subprocess.run(
        [*dvc, "config", "core.analytics", "false"], cwd=repo, check=True, capture_output=True
    )


def params_error(tmp_path: Path, section: str, values: dict) -> str:
    """The message :func:`geolab.common.params.load_section` gives for ``{section: values}``,
    with the file's path and the section left off (so tests compare what names the key)."""
    import yaml

    from geolab.common.params import ParamsError, load_section

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({section: values}))
    with pytest.raises(ParamsError) as err:
        load_section(section, path)
    prefix = f"{path}: {section}: "
    assert str(err.value).startswith(prefix), str(err.value)
    return str(err.value)[len(prefix) :]
