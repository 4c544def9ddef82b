"""Atomic writes: a file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml


class OutputPathError(ValueError):
    """A file cannot be written at this path: it is a directory, or a parent is a file."""


def check_output_path(path: str | Path) -> Path:
    """Fail early, naming the path, where no file can be written; commands call it before work.

    Raises:
        OutputPathError: ``path`` is a directory, or its nearest existing parent is not one.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path}: is a directory; give a file name")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise OutputPathError(f"{path}: cannot create it, {parent} is a file")
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it into place only on success.

    Args:
        path: the final path; its parent directory is created.
        mode: ``"w"`` or ``"wb"``.
        **kwargs: passed to :func:`open` (e.g. ``encoding``, ``newline``).

    Yields:
        The open temporary file. If the block raises, the temporary file is removed and ``path``
        is left as it was.

    Raises:
        OutputPathError: ``path`` is a directory or lies under a file (before anything is written).
    """
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _mode_for(path))
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    """Keep an existing file's mode; a new file gets 0o666 less the umask (mkstemp uses 0o600)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_json(path: str | Path, data: Any, indent: int = 2) -> None:
    """Write JSON atomically."""
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=indent, sort_keys=False)
        fh.write("\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """Write YAML atomically."""
    with atomic_open(path) as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


def atomic_save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def read_json(path: str | Path) -> Any:
    """Read JSON, naming the file in the error if it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: line {err.lineno}: not valid JSON: {err.msg}") from None


def save_splits(
    path: str | Path, arrays: dict[str, dict[str, Any]], compress: bool = False
) -> None:
    """Write ``{split: {name: array}}`` as one ``.npz`` with keys ``<split>_<name>``, atomically."""
    import numpy as np

    flat = {f"{s}_{k}": v for s, part in arrays.items() for k, v in part.items()}
    with atomic_open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **flat)


def load_split(path: str | Path, split: str) -> tuple[Any, Any]:
    """Read ``<split>_x`` and ``<split>_y`` from an ``.npz`` written by :func:`save_splits`.

    Raises:
        ValueError: the split is absent or empty (names the file).
    """
    import numpy as np

    with np.load(path) as data:
        if f"{split}_x" not in data:
            raise ValueError(f"{path}: no split '{split}' (has {sorted(data.files)})")
        x, y = data[f"{split}_x"], data[f"{split}_y"]
    if len(y) == 0:
        raise ValueError(f"{path}: split '{split}' is empty (check the tiles and params)")
    return x, y
