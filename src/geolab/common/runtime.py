"""Seeding, device and thread selection: the first thing every stage does."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from geolab.common.params import BaseParams

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic algorithms.

    Args:
        seed: the seed (``base.seed``).
        deterministic: also make torch use deterministic algorithms (warn-only where none exists).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``base.device`` into a torch device.

    Args:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.

    Raises:
        RuntimeError: ``cuda`` was asked for but is not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("base.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(device)


def set_threads(threads: int) -> None:
    """Set torch's intra-op thread count (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def setup(base: BaseParams) -> torch.device:
    """Apply the ``base`` section: seed, threads, device. Call at the top of every stage.

    Returns:
        The device to run on.
    """
    seed_everything(base.seed, base.deterministic)
    set_threads(base.threads)
    device = resolve_device(base.device)
    log.info("seed=%d device=%s threads=%d", base.seed, device, torch.get_num_threads())
    return device


def worker_seed(worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` that seeds NumPy and random from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
