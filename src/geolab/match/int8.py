"""DISK's network in static int8 for ONNX Runtime: export, split, calibrate, quantise.

Static quantisation stores the convolution weights in int8 (one scale per output channel) and
quantises the activations between layers with scales measured beforehand on calibration images
(ONNX Runtime's Percentile calibration at 99.99 %), so ONNX Runtime runs the convolutions with 8-bit
integer kernels (VNNI on CPUs that have it). Two changes keep DISK's output close to float32:

- the network's last convolution yields 128 descriptor channels and 1 heatmap channel in one
  tensor; with one activation scale for both, the heatmap's larger range swamps the
  descriptors. It is split into a descriptor convolution and a heatmap convolution (each with
  its own scale) whose outputs are concatenated, which is the same function in float;
- the first convolution (3 input channels, cheap) stays float32, and the heatmap convolution
  (one output channel, cheap) keeps float32 weights. The heatmap decides where keypoints
  are: with its weights in int8 about one keypoint in eleven moved by more than a pixel on
  Sentinel-2 dates the calibration did not see; with float weights, one in forty
  (``benchmarks/match_int8_layers.py`` measures each convolution this way).

The calibration images should look like the images to match (same sensor and processing); no
ground truth is used. ``benchmarks/match_speed.py`` measures speed and accuracy against float32.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Names of the two convolutions :func:`split_output_conv` makes: descriptors, then heatmap.
SPLIT_CONVS = ("split_conv_a", "split_conv_b")

#: Image files read as calibration images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def export_onnx(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` (one ``(N, C, H, W)`` tensor in, one out) as ONNX with dynamic N, H and W."""
    blob = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), example, blob, input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    return blob.getvalue()


def split_output_conv(blob: bytes, keep: int = 128) -> bytes:
    """The model with its output convolution split into channels ``[:keep]`` and ``[keep:]``.

    The two convolutions read the same input and their outputs are concatenated into the old
    output, so the model computes the same function.

    Raises:
        ValueError: the graph output is not produced by a convolution whose weights and bias
            are initializers.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(blob)
    graph = model.graph
    out = graph.output[0].name
    node = next((n for n in graph.node if out in n.output), None)
    inits = {i.name: i for i in graph.initializer}
    if (
        node is None
        or node.op_type != "Conv"
        or len(node.input) != 3
        or not all(name in inits for name in node.input[1:])
    ):
        raise ValueError(f"the output '{out}' does not come from a Conv with weights and bias")
    source, weight_name, bias_name = list(node.input)
    weight = numpy_helper.to_array(inits[weight_name])
    bias = numpy_helper.to_array(inits[bias_name])
    nodes = []
    slices = (slice(None, keep), slice(keep, None))
    for part, name, sl in zip("ab", SPLIT_CONVS, slices, strict=True):
        graph.initializer.extend(
            [
                numpy_helper.from_array(weight[sl].copy(), f"split_{part}.weight"),
                numpy_helper.from_array(bias[sl].copy(), f"split_{part}.bias"),
            ]
        )
        conv = helper.make_node(
            "Conv", [source, f"split_{part}.weight", f"split_{part}.bias"],
            [f"split_{part}"], name=name,
        )  # fmt: skip
        conv.attribute.extend(node.attribute)
        nodes.append(conv)
    nodes.append(helper.make_node("Concat", ["split_a", "split_b"], [out], axis=1, name="split"))
    index = list(graph.node).index(node)
    graph.node.remove(node)
    for k, n in enumerate(nodes):
        graph.node.insert(index + k, n)
    graph.initializer.remove(inits[weight_name])
    graph.initializer.remove(inits[bias_name])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def calibration_files(folder: str | Path) -> list[Path]:
    """The image files of a calibration folder, in name order.

    Raises:
        FileNotFoundError: no such folder, or no image in it (names it).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: calibration folder (match.int8_calibration) not found")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root}: no calibration images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def calibration_images(folder: str | Path, longest: int, count: int = 8) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (evenly spaced in name order) as DISK inputs.

    Each goes the way a matcher's grey input goes to DISK: read as grey (as the pipeline's
    pairs are), repeated to 3 channels, resized so its longest side is ``longest`` (the same
    :func:`~geolab.match.matchers.resize_longest`), scaled to ``[0, 1]``, and zero-padded at
    the bottom and right to a multiple of 16 as kornia's DISK pads: ``(1, 3, h, w)`` float32.

    Raises:
        FileNotFoundError: no such folder, or no image in it (names it).
        ValueError: an image that cannot be read (names it).
    """
    from geolab.match.data import read_any
    from geolab.match.matchers import resize_longest, to_rgb

    files = calibration_files(folder)
    picks = [files[int(i)] for i in np.unique(np.linspace(0, len(files) - 1, count).round())]
    out = []
    for path in picks:
        rgb, _ = resize_longest(to_rgb(read_any(path), str(path)), longest)
        x = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        ph, pw = (-x.shape[2]) % 16, (-x.shape[3]) % 16
        out.append(np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw))))
    return out


def quantize_static_int8(
    blob: bytes,
    calibration: Sequence[np.ndarray],
    float_convs: Sequence[int] = (0,),
    percentile: float = 99.99,
    float_names: Sequence[str] = (),
) -> bytes:
    """Statically quantise the convolutions of an ONNX model (input ``x``) to int8.

    The model is pre-processed as ONNX Runtime recommends (shape inference, graph clean-up),
    then quantised: QDQ format, per-channel int8 weights, uint8 activations whose ranges come from
    ONNX Runtime's Percentile calibration at ``percentile`` % over the ``calibration`` inputs
    (the rarest extreme values are clipped instead of every value getting a coarser step; on
    held-out Sentinel-2 dates this kept DISK's descriptors closer to float32 than MinMax, the
    full range). ``float_convs`` are indices (in graph order) of convolutions left in float32,
    ``float_names`` names of more of them.

    Raises:
        ValueError: no calibration image, or a float convolution the model does not have.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("static int8 quantisation needs at least one calibration image")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": np.ascontiguousarray(c, np.float32)} for c in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="geolab-int8-") as tmp:
        raw, src, dst = (Path(tmp, f"{n}.onnx") for n in ("raw", "float", "int8"))
        raw.write_bytes(blob)
        # shape inference and graph clean-up; symbolic shapes fail on the dynamic H and W
        quant_pre_process(str(raw), str(src), skip_symbolic_shape=True)
        # names after the clean-up, which may rename or fuse nodes
        convs = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv"]
        if any(not 0 <= i < len(convs) for i in float_convs):
            raise ValueError(f"float_convs {list(float_convs)}: the model has {len(convs)} Conv")
        unknown = sorted(set(float_names) - set(convs))
        if unknown:
            raise ValueError(f"float_names {unknown}: the model has no such Conv")
        keep = {convs[i] for i in float_convs} | set(float_names)
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"], nodes_to_exclude=sorted(keep),
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": percentile},
        )  # fmt: skip
        return dst.read_bytes()


def _dequantized_conv_inputs(blob: bytes) -> list[tuple[str, bool, bool]]:
    """``(name, int8 input, int8 weights)`` for each Conv in graph order.

    In the QDQ format an int8 tensor reaches the convolution through a ``DequantizeLinear``;
    a float32 one is read directly.
    """
    import onnx

    graph = onnx.load_from_string(blob).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    dq = "DequantizeLinear"
    return [
        (n.name, producer.get(n.input[0]) == dq, producer.get(n.input[1]) == dq)
        for n in graph.node
        if n.op_type == "Conv"
    ]


def float_conv_inputs(blob: bytes) -> list[bool]:
    """For each Conv of a (quantised) model in graph order, whether its input is float."""
    return [not int8_input for _, int8_input, _ in _dequantized_conv_inputs(blob)]


def int8_weight_convs(blob: bytes) -> dict[str, bool]:
    """For each Conv of a (quantised) model, by name: whether its weights are int8."""
    return {name: int8_weights for name, _, int8_weights in _dequantized_conv_inputs(blob)}
