"""Pure-PyTorch CPU fallbacks for torchvision's native ``torchvision::`` operators.

The pinned torchvision wheel is a CUDA build while torch is the CPU build. Its native
library ``torchvision/_C.so`` therefore fails to load, none of the ``torchvision::``
operators get registered, and ``import torchvision`` dies in
``torchvision/_meta_registrations.py`` with ``operator torchvision::nms does not exist``.

:func:`ensure_torchvision_ops` detects that case *before* torchvision is imported and
defines, with :mod:`torch.library`, every operator schema of ``_C.so``:

* ``nms`` and ``qnms``: greedy NMS with the native CPU kernel's semantics;
* ``roi_align`` and ``_roi_align_backward``: a port of the native CPU kernel (as a
  sparse interpolation matrix), so ``torchvision.ops.roi_align`` works, with autograd;
* ``deform_conv2d``: forward only, through kornia's pure-PyTorch implementation;
* ``_cuda_version``: returns -1 (no CUDA);
* ``roi_pool``, ``ps_roi_align``, ``ps_roi_pool``, ``qroi_align``, ``box_iou_rotated``
  and the remaining ``_*_backward`` ops: schema only, calling them raises
  :class:`NotImplementedError`.

It also makes ``torchvision.extension._has_ops()`` return True (torchvision derives it
from its own failed ``_C`` load), so that ``torchvision.ops`` dispatches to these
kernels and torchvision's own meta, autograd and autocast registrations apply to them.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = ["ensure_torchvision_ops", "nms", "roi_align"]

_LOG = logging.getLogger(__name__)

_NAMESPACE = "torchvision"
_EXTENSION_MODULE = "torchvision.extension"

_POOL_ARGS = "float spatial_scale, SymInt pooled_height, SymInt pooled_width"
_SIZE_ARGS = "SymInt batch_size, SymInt channels, SymInt height, SymInt width"
_DEFORM_ARGS = (
    "Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
    "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask"
)

# Schemas of torchvision 0.28's _C.so (csrc/ops/*.cpp and vision.cpp).
_SCHEMAS: dict[str, str] = {
    "_cuda_version": "_cuda_version() -> int",
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align": (
        f"roi_align(Tensor input, Tensor rois, {_POOL_ARGS}, int sampling_ratio, bool aligned)"
        " -> Tensor"
    ),
    "_roi_align_backward": (
        f"_roi_align_backward(Tensor grad, Tensor rois, {_POOL_ARGS}, {_SIZE_ARGS}, "
        "int sampling_ratio, bool aligned) -> Tensor"
    ),
    "qroi_align": (
        "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, "
        f"float rois_scale, int rois_zero_point, {_POOL_ARGS}, int sampling_ratio, "
        "bool aligned) -> Tensor"
    ),
    "roi_pool": f"roi_pool(Tensor input, Tensor rois, {_POOL_ARGS}) -> (Tensor, Tensor)",
    "_roi_pool_backward": (
        f"_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, {_POOL_ARGS}, "
        f"{_SIZE_ARGS}) -> Tensor"
    ),
    "ps_roi_align": (
        f"ps_roi_align(Tensor input, Tensor rois, {_POOL_ARGS}, int sampling_ratio)"
        " -> (Tensor, Tensor)"
    ),
    "_ps_roi_align_backward": (
        f"_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        f"{_POOL_ARGS}, int sampling_ratio, {_SIZE_ARGS}) -> Tensor"
    ),
    "ps_roi_pool": f"ps_roi_pool(Tensor input, Tensor rois, {_POOL_ARGS}) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward": (
        f"_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        f"{_POOL_ARGS}, {_SIZE_ARGS}) -> Tensor"
    ),
    "deform_conv2d": f"deform_conv2d({_DEFORM_ARGS}) -> Tensor",
    "_deform_conv2d_backward": (
        f"_deform_conv2d_backward(Tensor grad, {_DEFORM_ARGS})"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
}

_lock = threading.RLock()
_checked = False
_running = False
_fallbacks_active = False
# Registrations live as long as their Library object: keep a reference for the process.
_library: torch.library.Library | None = None


def ensure_torchvision_ops() -> bool:
    """Register CPU fallbacks for torchvision's native ops when ``_C.so`` cannot load.

    Call it before the first ``import torchvision`` (the import hook in
    :mod:`geolab.compat.hook` does so automatically). It locates torchvision's native
    library without importing torchvision and tries to load it; only when that fails,
    or loads without defining ``torchvision::nms``, are the fallbacks registered. The
    check runs once per process; later calls return the first call's result.

    Returns:
        True if the fallback operators are in use, False if there was nothing to do
        (torchvision is not installed, or its native ops load properly).
    """
    global _checked, _running, _fallbacks_active
    with _lock:
        # _running: a re-entrant call, e.g. from the import hook that our own
        # find_spec("torchvision") triggers, must not register a second time.
        if _checked or _running:
            return _fallbacks_active
        _running = True
        try:
            _fallbacks_active = _ensure_once()
            _checked = True
        finally:
            _running = False
        return _fallbacks_active


def _ensure_once() -> bool:
    """Run the detection and, if needed, the registration; see ensure_torchvision_ops."""
    package_dir = _torchvision_dir()
    if package_dir is None:
        _LOG.debug("torchvision is not installed; no fallback ops registered")
        return False
    if _native_ops_load(package_dir):
        _LOG.debug("torchvision native ops loaded from %s; no fallbacks needed", package_dir)
        return False
    _register_fallbacks()
    _force_has_ops()
    return True


def _torchvision_dir() -> Path | None:
    """Return torchvision's package directory without importing it, or None if absent."""
    try:
        spec = importlib.util.find_spec(_NAMESPACE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _native_ops_load(package_dir: Path) -> bool:
    """Try to load torchvision's ``_C`` library; return whether ``torchvision::nms`` exists."""
    loader_details = (
        importlib.machinery.ExtensionFileLoader,
        importlib.machinery.EXTENSION_SUFFIXES,
    )
    spec = importlib.machinery.FileFinder(str(package_dir), loader_details).find_spec("_C")
    if spec is None or spec.origin is None:
        _LOG.debug("no native _C library in %s", package_dir)
    else:
        try:
            torch.ops.load_library(spec.origin)
        except (OSError, ImportError, RuntimeError) as exc:
            _LOG.debug("cannot load %s: %s: %s", spec.origin, type(exc).__name__, exc)
            return False
    return _op_exists("nms")


def _op_exists(name: str) -> bool:
    """Return whether the operator ``torchvision::<name>`` is defined (has a schema)."""
    return hasattr(getattr(torch.ops, _NAMESPACE), name)


def _register_fallbacks() -> None:
    """Define the missing ``torchvision::`` schemas and register the fallback kernels."""
    global _library
    if _library is not None:
        return
    library = torch.library.Library(_NAMESPACE, "FRAGMENT")
    kernels = _kernels()
    for name, schema in _SCHEMAS.items():
        if _op_exists(name):
            _LOG.debug("torchvision::%s already defined; left as is", name)
            continue
        library.define(schema)
        kernel, dispatch_key = kernels.get(name, (_unsupported(name), "CPU"))
        library.impl(name, kernel, dispatch_key)
        _LOG.debug("registered torchvision::%s (%s)", name, dispatch_key)
    _library = library


def _kernels() -> dict[str, tuple[Callable[..., Any], str]]:
    """Map op names to (kernel, dispatch key) for the ops that have a real fallback."""
    return {
        "_cuda_version": (_cuda_version_kernel, "CompositeExplicitAutograd"),
        "nms": (_nms_kernel, "CPU"),
        "qnms": (_nms_kernel, "CPU"),
        "roi_align": (roi_align, "CPU"),
        "_roi_align_backward": (_roi_align_backward_kernel, "CPU"),
        "deform_conv2d": (_deform_conv2d_kernel, "CPU"),
    }


def _unsupported(name: str) -> Callable[..., Any]:
    """Return a kernel that raises NotImplementedError for ``torchvision::<name>``."""

    def kernel(*args: Any) -> Any:
        raise NotImplementedError(
            f"torchvision::{name} has no CPU implementation here: torchvision's native "
            "library could not be loaded (CUDA torchvision build with CPU torch) and "
            "geolab.compat.torchvision_ops only provides fallbacks for nms, roi_align "
            "and deform_conv2d (forward)."
        )

    return kernel


# ----------------------------------------------------------------------------- has_ops


def _has_ops_true() -> bool:
    """Report the ops as available (replaces ``torchvision.extension._has_ops``)."""
    return True


def _force_has_ops() -> None:
    """Make ``torchvision.extension._has_ops()`` return True, now or when it is imported."""
    module = sys.modules.get(_EXTENSION_MODULE)
    if module is not None:
        _patch_extension(module)
    elif not any(isinstance(finder, _ExtensionPatcher) for finder in sys.meta_path):
        # Rebind rather than mutate: an import may be iterating the current list.
        sys.meta_path = [_ExtensionPatcher(), *sys.meta_path]


def _patch_extension(module: ModuleType) -> None:
    """Point ``module._has_ops`` (torchvision.extension) at :func:`_has_ops_true`."""
    module._has_ops = _has_ops_true  # type: ignore[attr-defined]
    _LOG.debug("patched %s._has_ops to report the fallback ops", module.__name__)


class _ExtensionPatcher:
    """One-shot meta path finder wrapping the loader of ``torchvision.extension``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Find ``torchvision.extension`` with the other finders and wrap its loader."""
        if fullname != _EXTENSION_MODULE:
            return None
        sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader:
    """Loader proxy that patches ``_has_ops`` right after the module executes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (e.g. copy/pickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self._inner, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """Delegate module creation to the wrapped loader."""
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Execute the module with the wrapped loader, then patch it."""
        self._inner.exec_module(module)
        _patch_extension(module)


# ----------------------------------------------------------------------------- kernels


def _cuda_version_kernel() -> int:
    """Kernel of ``torchvision::_cuda_version``: -1 means built without CUDA."""
    return -1


def _check(condition: bool, message: str) -> None:
    """Raise RuntimeError (like TORCH_CHECK) when ``condition`` is false."""
    if not condition:
        raise RuntimeError(message)


def _nms_kernel(dets: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Kernel of ``torchvision::nms`` and ``torchvision::qnms`` (on integer reprs)."""
    _check(dets.dim() == 2, f"boxes should be a 2d tensor, got {dets.dim()}D")
    _check(dets.size(1) == 4, f"boxes should have 4 elements in dimension 1, got {dets.size(1)}")
    _check(scores.dim() == 1, f"scores should be a 1d tensor, got {scores.dim()}D")
    _check(
        dets.size(0) == scores.size(0),
        "boxes and scores should have same number of elements in dimension 0, "
        f"got {dets.size(0)} and {scores.size(0)}",
    )
    return nms(dets, scores, iou_threshold)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression with the semantics of ``torchvision.ops.nms``.

    Boxes are visited by decreasing score (stable, so ties keep the lower index first);
    each kept box suppresses the later boxes whose IoU with it is strictly greater than
    ``iou_threshold`` (IoU is computed exactly like the native kernel, so 0/0 never
    suppresses). The sorted boxes are processed in blocks: the greedy recurrence inside a
    block is solved with boolean matrix steps, then the block's kept boxes suppress all
    later boxes at once, so Python iterates per block rather than per box.

    Args:
        boxes: ``(N, 4)`` boxes in ``(x1, y1, x2, y2)`` format.
        scores: ``(N,)`` scores.
        iou_threshold: boxes with IoU > this value are suppressed.

    Returns:
        int64 tensor with the indices of the kept boxes, by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices
    coords = boxes[order]
    if not coords.is_floating_point():
        coords = coords.to(torch.float32)
    areas = (coords[:, 2] - coords[:, 0]) * (coords[:, 3] - coords[:, 1])
    table = torch.cat([coords, areas[:, None]], dim=1)  # rows: x1, y1, x2, y2, area
    count = table.size(0)
    alive = torch.ones(count, dtype=torch.bool, device=boxes.device)
    positions = torch.arange(count, device=boxes.device)
    for start in range(0, count, _NMS_BLOCK):
        stop = min(start + _NMS_BLOCK, count)
        block = positions[start:stop][alive[start:stop]]
        if block.numel() == 0:
            continue
        overlaps = _iou_matrix(table[block], table[block]) > iou_threshold
        kept = block[_greedy_keep(overlaps)]
        alive[block] = False
        alive[kept] = True
        for chunk in range(stop, count, _NMS_CHUNK):
            later = positions[chunk : chunk + _NMS_CHUNK][alive[chunk : chunk + _NMS_CHUNK]]
            if later.numel():
                hit = (_iou_matrix(table[kept], table[later]) > iou_threshold).any(dim=0)
                alive[later[hit]] = False
    return order[alive]


_NMS_BLOCK = 128
_NMS_CHUNK = 16384


def _iou_matrix(first: Tensor, second: Tensor) -> Tensor:
    """IoU of each ``[x1, y1, x2, y2, area]`` row of ``first`` with each row of ``second``.

    Same arithmetic as the native kernel: ``inter / (area_i + area_j - inter)``.
    """
    a, b = first[:, None, :], second[None, :, :]
    width = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    height = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(
        min=0
    )
    inter = width * height
    return inter / (a[..., 4] + b[..., 4] - inter)


def _greedy_keep(overlaps: Tensor) -> Tensor:
    """Solve greedy NMS inside a block of score-sorted boxes.

    ``keep[i] = not any(keep[j] and overlaps[j, i] for j < i)`` is triangular, so it has
    one solution and every fixed point of the Jacobi step below is that solution; the
    step fixes at least one more leading entry per iteration, so it converges.

    Args:
        overlaps: ``(B, B)`` boolean, ``overlaps[j, i]`` = IoU(j, i) > threshold.

    Returns:
        ``(B,)`` boolean mask of the kept boxes.
    """
    suppressors = torch.triu(overlaps, diagonal=1)  # only earlier boxes suppress later ones
    keep = torch.ones(overlaps.size(0), dtype=torch.bool, device=overlaps.device)
    while True:
        update = ~(suppressors & keep[:, None]).any(dim=0)
        if torch.equal(update, keep):
            return keep
        keep = update


def roi_align(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoI Align forward, a port of torchvision's native CPU kernel.

    Bilinear samples (zero outside ``[-1, size]``, clamped to the border inside it) are
    folded into a sparse ``(K*PH*PW, N*H*W)`` interpolation matrix, applied with one
    sparse-dense matmul; memory is independent of the channel count.

    Args:
        input: ``(N, C, H, W)`` feature map.
        rois: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``, same dtype as ``input``.
        spatial_scale: factor mapping box coordinates to ``input`` coordinates.
        pooled_height: output height PH.
        pooled_width: output width PW.
        sampling_ratio: samples per bin and axis; ``<= 0`` means adaptive.
        aligned: shift box coordinates by -0.5 pixel (Detectron2 convention).

    Returns:
        ``(K, C, PH, PW)`` pooled features.
    """
    _check_roi_inputs(input, rois)
    batch, channels, height, width = input.shape
    num_rois = rois.size(0)
    if num_rois == 0 or input.numel() == 0:
        return input.new_zeros((num_rois, channels, pooled_height, pooled_width))
    matrix, count = _roi_align_matrix(
        rois,
        (batch, height, width),
        spatial_scale,
        (pooled_height, pooled_width),
        sampling_ratio,
        aligned,
    )
    flat = input.to(matrix.dtype).permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    out = torch.sparse.mm(matrix, flat) / count[:, None]
    out = out.reshape(num_rois, pooled_height, pooled_width, channels).permute(0, 3, 1, 2)
    return out.to(input.dtype).contiguous()


def _roi_align_backward_kernel(
    grad: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    batch_size: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """Kernel of ``torchvision::_roi_align_backward``: transpose of :func:`roi_align`."""
    _check(grad.dtype == rois.dtype, "Expected grad and rois to have the same dtype")
    grad_input = grad.new_zeros((batch_size, channels, height, width))
    if rois.size(0) == 0 or grad_input.numel() == 0:
        return grad_input
    matrix, count = _roi_align_matrix(
        rois,
        (batch_size, height, width),
        spatial_scale,
        (pooled_height, pooled_width),
        sampling_ratio,
        aligned,
    )
    rows = grad.to(matrix.dtype).permute(0, 2, 3, 1).reshape(-1, channels) / count[:, None]
    flat = torch.sparse.mm(matrix.t(), rows)
    grad_input = flat.reshape(batch_size, height, width, channels).permute(0, 3, 1, 2)
    return grad_input.to(grad.dtype).contiguous()


def _check_roi_inputs(input: Tensor, rois: Tensor) -> None:
    """Validate roi_align inputs like the native kernel does."""
    _check(input.dim() == 4, f"input must be a 4d tensor, got {input.dim()}D")
    _check(rois.dim() == 2 and rois.size(1) == 5, "rois must have shape as Tensor[K, 5]")
    _check(
        input.dtype == rois.dtype,
        "Expected tensor for input to have the same type as tensor for rois; "
        f"but type {input.dtype} does not equal {rois.dtype}",
    )


def _roi_align_matrix(
    rois: Tensor,
    feature_shape: tuple[int, int, int],
    spatial_scale: float,
    pooled: tuple[int, int],
    sampling_ratio: int,
    aligned: bool,
) -> tuple[Tensor, Tensor]:
    """Build the sparse RoI Align interpolation matrix and the per-row sample counts.

    Args:
        rois: ``(K, 5)`` rois.
        feature_shape: ``(N, H, W)`` of the feature map.
        spatial_scale: box-to-feature scale.
        pooled: ``(PH, PW)``.
        sampling_ratio: samples per bin and axis, ``<= 0`` for adaptive.
        aligned: apply the -0.5 pixel shift.

    Returns:
        The ``(K*PH*PW, N*H*W)`` sparse COO matrix of bilinear weights (not yet divided
        by the sample count) and the ``(K*PH*PW,)`` sample counts.
    """
    batch, height, width = feature_shape
    pooled_height, pooled_width = pooled
    work = rois.dtype if rois.dtype in (torch.float32, torch.float64) else torch.float32
    rois = rois.to(work)
    batch_index = rois[:, 0].long()
    _check(
        bool(((batch_index >= 0) & (batch_index < batch)).all()),
        f"roi batch indices must lie in [0, {batch})",
    )
    shift = 0.5 if aligned else 0.0
    start_x, start_y, end_x, end_y = (rois[:, 1:] * spatial_scale - shift).unbind(1)
    length_x, length_y = end_x - start_x, end_y - start_y
    if not aligned:
        length_x, length_y = length_x.clamp(min=1.0), length_y.clamp(min=1.0)
    grid_y = _sampling_grid(length_y, pooled_height, sampling_ratio)
    grid_x = _sampling_grid(length_x, pooled_width, sampling_ratio)
    y_index, y_weight = _axis_taps(start_y, length_y, pooled_height, grid_y, height)
    x_index, x_weight = _axis_taps(start_x, length_x, pooled_width, grid_x, width)
    # -> [K, PH, PW, taps_y, taps_x]
    cols = (batch_index[:, None, None, None, None] * height + y_index[:, :, None, :, None]) * width
    cols = cols + x_index[:, None, :, None, :]
    values = y_weight[:, :, None, :, None] * x_weight[:, None, :, None, :]
    num_rows = rois.size(0) * pooled_height * pooled_width
    rows = torch.arange(num_rows, device=rois.device).reshape(cols.shape[:3] + (1, 1))
    rows = rows.expand(cols.shape)
    nonzero = values != 0
    matrix = torch.sparse_coo_tensor(
        torch.stack([rows[nonzero], cols[nonzero]]),
        values[nonzero],
        (num_rows, batch * height * width),
        check_invariants=True,
    )
    count = (grid_y * grid_x).clamp(min=1).repeat_interleave(pooled_height * pooled_width)
    return matrix, count


def _sampling_grid(length: Tensor, pooled: int, sampling_ratio: int) -> Tensor:
    """Return samples per bin along one axis (float ``[K]``): fixed or adaptive."""
    if sampling_ratio > 0:
        return torch.full_like(length, float(sampling_ratio))
    return torch.ceil(length / pooled)


def _axis_taps(
    start: Tensor, length: Tensor, pooled: int, grid: Tensor, extent: int
) -> tuple[Tensor, Tensor]:
    """Bilinear taps of the sample points along one axis.

    Args:
        start: ``[K]`` roi start coordinate.
        length: ``[K]`` roi length.
        pooled: number of bins P.
        grid: ``[K]`` samples per bin G_k (float; ``<= 0`` means no sample).
        extent: feature size along the axis.

    Returns:
        Indices (int64) and weights, both ``[K, P, 2 * G]`` with ``G = max_k G_k``;
        invalid samples get weight 0.
    """
    num_grid = max(int(grid.max().item()), 1)
    options = {"dtype": start.dtype, "device": start.device}
    bins = torch.arange(pooled, **options)[None, :, None]
    steps = torch.arange(num_grid, **options)[None, None, :]
    bin_size = (length / pooled)[:, None, None]
    grid = grid[:, None, None]
    # Same operation order as the C++ kernel: start + p * bin + (g + .5) * bin / grid.
    pos = start[:, None, None] + bins * bin_size + (steps + 0.5) * bin_size / grid
    valid = (steps < grid) & (pos >= -1.0) & (pos <= extent)
    pos = torch.where(valid, pos.clamp(min=0.0), 0.0)
    low = pos.long()
    at_border = low >= extent - 1
    low = torch.where(at_border, extent - 1, low)
    high = torch.where(at_border, low, low + 1)
    frac = torch.where(at_border, 0.0, pos - low)
    zero = torch.zeros_like(frac)
    weight_low = torch.where(valid, 1.0 - frac, zero)
    weight_high = torch.where(valid, frac, zero)
    index = torch.stack([low, high], dim=-1).flatten(2)
    weight = torch.stack([weight_low, weight_high], dim=-1).flatten(2)
    return index, weight


def _deform_conv2d_kernel(
    input: Tensor,
    weight: Tensor,
    offset: Tensor,
    mask: Tensor,
    bias: Tensor,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    offset_groups: int,
    use_mask: bool,
) -> Tensor:
    """Kernel of ``torchvision::deform_conv2d`` (forward only) via kornia's implementation.

    Groups and offset groups are implied by the tensor shapes, as in torchvision's
    ``ops.deform_conv2d`` which computes them from the same shapes.
    """
    try:
        from kornia.feature.aliked.deform_conv2d import deform_conv2d
    except ImportError as exc:  # pragma: no cover - kornia is a geolab dependency
        raise NotImplementedError(
            "torchvision::deform_conv2d fallback needs kornia (pure-PyTorch deform_conv2d)"
        ) from exc
    return deform_conv2d(
        input,
        offset,
        weight,
        bias,
        stride=(stride_h, stride_w),
        padding=(pad_h, pad_w),
        dilation=(dilation_h, dilation_w),
        mask=mask if use_mask else None,
    )
