"""Running DVC and git in the project repository (shared by the gate and the plot renderer)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class RepoError(RuntimeError):
    """DVC or git failed, or a revision does not exist."""


def dvc_command() -> list[str] | None:
    """Find the ``dvc`` executable: next to ``sys.executable`` first, then on ``PATH``.

    Returns:
        The command prefix, or ``None`` if DVC is not installed.
    """
    beside = Path(sys.executable).with_name("dvc")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("dvc")
    return [found] if found else None


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


def run_dvc(args: Sequence[str], repo_root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``dvc ARGS`` in ``repo_root`` with analytics off.

    Args:
        args: arguments after ``dvc``.
        repo_root: the DVC repository root (the working directory).

    Returns:
        The completed process (stdout and stderr captured as text).

    Raises:
        RepoError: DVC is not installed or exits non-zero; the message carries DVC's error.
    """
    dvc = dvc_command()
    if dvc is None:
        raise RepoError("dvc is not installed (not beside the Python executable nor on PATH)")
    cmd = [*dvc, *args]
    log.debug("running %s in %s", " ".join(cmd), repo_root)
    proc = subprocess.run(
        cmd, cwd=repo_root, env=_subprocess_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
        raise RepoError(f"`dvc {' '.join(args)}` failed in {repo_root}: {err}")
    return proc


def git(args: Sequence[str], repo_root: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` in ``repo_root``; the caller checks the return code."""
    return subprocess.run(
        ["git", *args], cwd=repo_root, env=_subprocess_env(), capture_output=True, check=False
    )


def check_revision(rev: str, repo_root: Path) -> None:
    """Check that ``rev`` names a git commit in ``repo_root``.

    Args:
        rev: a commit, branch, tag or expression such as ``HEAD~1``.
        repo_root: the repository.

    Raises:
        RepoError: the revision does not exist, or ``repo_root`` is not a git repository.
    """
    if not Path(repo_root).is_dir():
        raise RepoError(f"{repo_root}: no such directory")
    proc = git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo_root)
    if proc.returncode != 0:
        if git(["rev-parse", "--git-dir"], repo_root).returncode != 0:
            raise RepoError(f"{Path(repo_root).resolve()}: not a git repository")
        raise RepoError(
            f"unknown revision '{rev}': not a commit, branch or tag of the git repository "
            f"at {Path(repo_root).resolve()}"
        )
