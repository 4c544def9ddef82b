"""Tests for geolab.compat: torchvision CPU op fallbacks and the start-up import hook."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from geolab.compat import hook
from geolab.compat import torchvision_ops as tvops

# Registers the fallbacks (when needed) before this module imports torchvision.
FALLBACKS = tvops.ensure_torchvision_ops()
needs_fallbacks = pytest.mark.skipif(not FALLBACKS, reason="torchvision native ops are available")


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tv() -> ModuleType:
    return importlib.import_module("torchvision")


def _boxes(rows: list[list[float]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype).reshape(-1, 4)


# Hand-computed case: IoU(A, B) = 81 / 119 ~ 0.68, IoU(A, D) = 50 / 100 = 0.5 exactly,
# C is disjoint from everything.
HAND_BOXES = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]]
HAND_SCORES = [0.9, 0.8, 0.7, 0.6]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.5, [0, 2, 3]), (0.49, [0, 2]), (0.7, [0, 1, 2, 3]), (0.0, [0, 2])],
)
def test_nms_hand_computed(threshold: float, expected: list[int]) -> None:
    keep = tvops.nms(_boxes(HAND_BOXES), torch.tensor(HAND_SCORES), threshold)
    assert keep.dtype == torch.int64
    assert keep.tolist() == expected


def test_nms_orders_by_decreasing_score() -> None:
    scores = torch.tensor([0.1, 0.8, 0.7, 0.95])
    keep = tvops.nms(_boxes(HAND_BOXES), scores, 0.5)
    # 3 (0.95) suppresses nothing (IoU with 0 and 1 is 0.5 and ~0.33), 1 (0.8) then
    # suppresses 0 (IoU 0.68); 2 is disjoint.
    assert keep.tolist() == [3, 1, 2]


def test_nms_ties_keep_lowest_index_first() -> None:
    boxes = _boxes([[0, 0, 1, 1], [0, 0, 1, 1], [5, 5, 6, 6], [5, 5, 6, 6]])
    keep = tvops.nms(boxes, torch.tensor([0.5, 0.5, 0.5, 0.9]), 0.5)
    assert keep.tolist() == [3, 0]


def test_nms_degenerate_and_empty() -> None:
    empty = tvops.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64
    assert empty.shape == (0,)
    # Zero-area boxes have IoU 0/0 = nan, which is never > threshold: nothing suppressed.
    points = tvops.nms(_boxes([[1, 1, 1, 1], [1, 1, 1, 1]]), torch.tensor([0.2, 0.3]), 0.1)
    assert points.tolist() == [1, 0]


def _reference_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    def iou(a: list[float], b: list[float]) -> float:
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        area_a = (a[2] - a[0]) * (a[3] - a[1])
        return inter / (area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    suppressed: set[int] = set()
    for rank, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        suppressed.update(j for j in order[rank + 1 :] if iou(boxes[i], boxes[j]) > threshold)
    return keep


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.8])
def test_nms_matches_reference_on_random_boxes(threshold: float) -> None:
    gen = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=gen, dtype=torch.float64) * 100
    sizes = torch.rand(300, 2, generator=gen, dtype=torch.float64) * 30 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = (torch.rand(300, generator=gen, dtype=torch.float64) * 20).round() / 20  # ties
    keep = tvops.nms(boxes, scores, threshold)
    assert keep.tolist() == _reference_nms(boxes.tolist(), scores.tolist(), threshold)


def test_nms_chain_across_blocks() -> None:
    # Box i overlaps i + 1 (IoU 0.6) but not i + 2: greedy keeps every other box, which
    # needs the within-block resolution to propagate along the whole chain.
    starts = torch.arange(300, dtype=torch.float32) * 2.5
    boxes = torch.stack([starts, torch.zeros(300), starts + 10, torch.ones(300)], dim=1)
    keep = tvops.nms(boxes, torch.linspace(1, 0, 300), 0.5)
    assert keep.tolist() == list(range(0, 300, 2))


def test_torchvision_ops_nms(tv: ModuleType) -> None:
    boxes, scores = _boxes(HAND_BOXES), torch.tensor(HAND_SCORES)
    assert tv.ops.nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert torch.ops.torchvision.nms(boxes, scores, 0.49).tolist() == [0, 2]


@pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning")
def test_torchvision_ops_nms_quantized(tv: ModuleType) -> None:
    boxes = torch.quantize_per_tensor(_boxes(HAND_BOXES), 0.5, 0, torch.quint8)
    scores = torch.quantize_per_tensor(torch.tensor(HAND_SCORES), 0.01, 0, torch.quint8)
    assert tv.ops.nms(boxes, scores, 0.5).tolist() == [0, 2, 3]


def test_torchvision_batched_nms(tv: ModuleType) -> None:
    boxes = _boxes([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([0, 1, 0, 1])
    # 2 overlaps 0 in the same class; 1 overlaps 0 but is another class.
    assert tv.ops.batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1, 3]
    assert tv.ops.batched_nms(boxes[:0], scores[:0], classes[:0], 0.5).numel() == 0


def test_batched_nms_strategies_agree(tv: ModuleType) -> None:
    from torchvision.ops.boxes import _batched_nms_coordinate_trick, _batched_nms_vanilla

    gen = torch.Generator().manual_seed(1)
    corners = torch.rand(400, 2, generator=gen) * 50
    boxes = torch.cat([corners, corners + torch.rand(400, 2, generator=gen) * 20 + 1], dim=1)
    scores = torch.rand(400, generator=gen)
    classes = torch.randint(0, 4, (400,), generator=gen)
    vanilla = _batched_nms_vanilla(boxes, scores, classes, 0.4)
    trick = _batched_nms_coordinate_trick(boxes, scores, classes, 0.4)
    assert vanilla.tolist() == trick.tolist()
    assert 0 < vanilla.numel() < 400


def _python_roi_align(tv: ModuleType) -> object:
    # torchvision's pure-PyTorch reference, without its lazy torch.compile wrapper.
    fn = importlib.import_module("torchvision.ops.roi_align")._roi_align
    return getattr(fn, "__wrapped__", fn)


ROIS = [[0, 1.0, 1.0, 8.0, 8.0], [1, 2.5, 0.0, 14.0, 9.5], [1, 0.0, 3.2, 4.1, 15.0]]


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_matches_torchvision_python(
    tv: ModuleType, aligned: bool, sampling_ratio: int
) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 16, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(ROIS, dtype=torch.float64)
    out = tv.ops.roi_align(x, rois, (3, 4), 1.0, sampling_ratio, aligned)
    assert out.shape == (3, 3, 3, 4)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))

    x_ref = x.detach().requires_grad_()
    ref = _python_roi_align(tv)(x_ref, rois, 1.0, 3, 4, sampling_ratio, aligned)
    (grad_ref,) = torch.autograd.grad(ref, x_ref, torch.ones_like(ref))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, grad_ref)


def test_roi_align_gradcheck_and_outside_rois(tv: ModuleType) -> None:
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.5, 1.0, 5.0, 4.0], [0, -3.0, 2.0, 9.0, 9.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: tv.ops.roi_align(t, rois, 2, 0.5, 2, True), (x,))
    # Native semantics: samples beyond [-1, size] contribute zero.
    outside = torch.tensor([[0, 40.0, 40.0, 60.0, 60.0]], dtype=torch.float64)
    assert tv.ops.roi_align(x.detach(), outside, 2).abs().sum() == 0


def test_deform_conv2d_zero_offset_is_conv2d(tv: ModuleType) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 9, generator=gen)
    weight = torch.randn(6, 2, 3, 3, generator=gen)  # groups=2
    bias = torch.randn(6, generator=gen)
    offset = torch.zeros(2, 2 * 9, 9, 9)
    expected = F.conv2d(x, weight, bias, padding=1, groups=2)
    out = tv.ops.deform_conv2d(x, offset, weight, bias, padding=1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    masked = tv.ops.deform_conv2d(x, offset, weight, None, padding=1, mask=torch.ones(2, 9, 9, 9))
    torch.testing.assert_close(masked, expected - bias[:, None, None], rtol=1e-4, atol=1e-4)
    # Offsets are (dy, dx) pairs per kernel tap: dx = +1 samples one column to the right.
    offset[:, 1::2] = 1.0
    shifted = F.conv2d(F.pad(x, (0, 2, 1, 1)), weight, bias, groups=2)
    out = tv.ops.deform_conv2d(x, offset, weight, bias, padding=1)
    torch.testing.assert_close(out, shifted, rtol=1e-4, atol=1e-4)


@needs_fallbacks
def test_unsupported_ops_raise_not_implemented(tv: ModuleType) -> None:
    x = torch.randn(1, 4, 8, 8)
    rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]])
    with pytest.raises(NotImplementedError, match="roi_pool"):
        tv.ops.roi_pool(x, rois, 2)
    x.requires_grad_()
    out = tv.ops.deform_conv2d(x, torch.zeros(1, 18, 8, 8), torch.randn(2, 4, 3, 3), padding=1)
    with pytest.raises(NotImplementedError, match="_deform_conv2d_backward"):
        out.sum().backward()


@needs_fallbacks
def test_ensure_is_idempotent(tv: ModuleType) -> None:
    library = tvops._library
    assert library is not None
    assert tvops.ensure_torchvision_ops() is True
    assert tvops.ensure_torchvision_ops() is True
    assert tvops._library is library
    assert tv.extension._has_ops()
    assert torch.ops.torchvision._cuda_version() == -1


def test_ensure_without_torchvision_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # find_spec() -> None
    assert tvops._torchvision_dir() is None
    assert tvops._ensure_once() is False


def test_finder_runs_ensure_once_and_removes_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(tvops, "ensure_torchvision_ops", lambda: calls.append("ensure") or True)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    hook.TorchvisionCompatFinder.uninstall()
    hook.TorchvisionCompatFinder.install()
    hook.TorchvisionCompatFinder.install()
    finders = [f for f in sys.meta_path if isinstance(f, hook.TorchvisionCompatFinder)]
    assert len(finders) == 1
    assert sys.meta_path[0] is finders[0]
    assert finders[0].find_spec("numpy") is None
    assert calls == []
    assert finders[0].find_spec("torchvision") is None
    assert calls == ["ensure"]
    assert not any(isinstance(f, hook.TorchvisionCompatFinder) for f in sys.meta_path)


def test_install_pth_is_idempotent(tmp_path: Path) -> None:
    pth = hook.install_pth(tmp_path)
    module = tmp_path / f"{hook.HOOK_MODULE}.py"
    assert pth == tmp_path / hook.PTH_NAME
    assert pth.read_text() == f"import {hook.HOOK_MODULE}\n"
    compile(module.read_text(), str(module), "exec")
    stamps = (pth.stat().st_mtime_ns, module.stat().st_mtime_ns)
    assert hook.main([str(tmp_path)]) == 0
    assert (pth.stat().st_mtime_ns, module.stat().st_mtime_ns) == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pth.name, module.name])


def _run_venv_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def venv_hook() -> Path:
    pth = hook.install_pth()
    assert pth.parent == Path(sysconfig.get_paths()["purelib"])
    return pth


def test_startup_hook_is_cheap(venv_hook: Path, tmp_path: Path) -> None:
    code = (
        "import sys; assert '_geolab_torchvision_hook' in sys.modules; "
        "assert 'torch' not in sys.modules and 'geolab' not in sys.modules; "
        "assert type(sys.meta_path[0]).__name__ == 'TorchvisionCompatFinder'"
    )
    result = _run_venv_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_plain_import_of_dependents_works(venv_hook: Path, tmp_path: Path) -> None:
    code = "import torchvision, transformers, timm, segmentation_models_pytorch"
    result = _run_venv_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_torchvision_resnet18_forward(tv: ModuleType) -> None:
    model = tv.models.resnet18(weights=None).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_timm_efficientnet_lite0_forward() -> None:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_smp_unet_forward() -> None:
    import segmentation_models_pytorch as smp

    model = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=6).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 6, 64, 64)


def test_transformers_bert_token_classification_forward() -> None:
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=5,
    )
    model = BertForTokenClassification(config).eval()
    ids = torch.randint(0, 100, (2, 12))
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape == (2, 12, 5)


def test_transforms_v2_on_tensor_image(tv: ModuleType) -> None:
    from torchvision.transforms import v2

    pipeline = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize((32, 32), antialias=True),
            v2.RandomHorizontalFlip(p=1.0),
            v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]),
        ]
    )
    image = torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8)
    out = pipeline(image)
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32
    flipped = v2.functional.horizontal_flip(image)
    assert torch.equal(flipped, image.flip(-1))
