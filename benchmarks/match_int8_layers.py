"""match int8 layers: which of DISK's convolutions int8 hurts, measured without ground truth.

Usage: python benchmarks/match_int8_layers.py [--size 384] [--out ...json]

Static int8 (``match.speed: [onnx_int8]``, :mod:`geolab.match.int8`) makes DISK about twice as
fast, but moves some keypoints. This script tells which convolution is to blame, by how close
DISK's output stays to its float32 output (ONNX Runtime, float32) on the 12 T36UYA dates, which
the int8 calibration (the eo-learn scenes) does not see; no homography or corner error is used.

For each convolution ``i`` (graph order of the exported model, output convolution split), every
convolution is quantised except the first and ``i``; then, per image:

- keypoint recall@1px: the share of float32 keypoints (``--keypoints`` per image) with an int8
  keypoint within one pixel;
- descriptor cosine: the mean cosine similarity of the descriptors of those keypoint pairs.

Then three variants are timed one after the other (``--reps`` times, medians, ms per image):
float32, int8 with the first convolution float (the previous default), and int8 with the first
convolution float and the heatmap convolution's weights float (the default now).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from tqdm import tqdm

from geolab.common.io import write_json
from geolab.match import int8
from geolab.match.matchers import DEFAULT_CALIBRATION, OnnxRuntimeModule, _build_extractor

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "data" / "sentinel2" / "T36UYA"


def features(extractor: torch.nn.Module, net: torch.nn.Module, images, n: int) -> list:
    """``(keypoints, unit descriptors)`` per image with ``net`` as DISK's network."""
    extractor.unet = net
    out = []
    with torch.inference_mode():
        for x in images:
            f = extractor(torch.from_numpy(x), n=n, pad_if_not_divisible=True)[0]
            desc = torch.nn.functional.normalize(f.descriptors, dim=-1)
            out.append((f.keypoints.numpy(), desc.numpy()))
    return out


def fidelity(reference: list, other: list) -> dict[str, float]:
    """Keypoint recall@1px and descriptor cosine of ``other`` against ``reference``."""
    recall, cosine = [], []
    for (k0, d0), (k1, d1) in zip(reference, other, strict=True):
        dist = np.linalg.norm(k0[:, None] - k1[None], axis=-1)
        nearest = dist.argmin(1)
        ok = dist[np.arange(len(k0)), nearest] <= 1.0
        recall.append(float(ok.mean()))
        cosine.append(float((d0[ok] * d1[nearest[ok]]).sum(-1).mean()) if ok.any() else 0.0)
    return {"recall@1px": statistics.fmean(recall), "cosine": statistics.fmean(cosine)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=384, help="longest side of the images (px)")
    p.add_argument("--keypoints", type=int, default=1024)
    p.add_argument("--calibration", type=Path, default=ROOT / DEFAULT_CALIBRATION)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/match_int8_layers.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    extractor = _build_extractor("disk", args.keypoints)
    blob = int8.split_output_conv(int8.export_onnx(extractor.unet, torch.rand(1, 3, 64, 64)))
    calibration = int8.calibration_images(args.calibration, args.size)
    held_out = int8.calibration_images(HELD_OUT, args.size, count=12)
    float_net = OnnxRuntimeModule(blob)
    reference = features(extractor, float_net, held_out, args.keypoints)

    def quantised(**kwargs: Any) -> OnnxRuntimeModule:
        return OnnxRuntimeModule(int8.quantize_static_int8(blob, calibration, **kwargs))

    names = [n.name for n in onnx.load_from_string(blob).graph.node if n.op_type == "Conv"]
    per_conv = []
    for i, name in enumerate(tqdm(names, desc="convolutions")):
        net = quantised(float_names=[name])  # and the first, as always
        got = fidelity(reference, features(extractor, net, held_out, args.keypoints))
        per_conv.append({"index": i, "name": name, **got})
    previous = quantised()
    default = quantised(float_names=int8.SPLIT_CONVS[1:])
    variants = {"float32": float_net, "int8, first float": previous}
    variants["int8, first float, heatmap weights float (default)"] = default
    fid = {
        name: fidelity(reference, features(extractor, net, held_out, args.keypoints))
        for name, net in variants.items()
    }
    x = torch.from_numpy(held_out[0])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for net in variants.values():
        net(x)  # warm-up
    for _ in tqdm(range(args.reps), desc="timing"):
        for name, net in variants.items():
            start = time.perf_counter()
            net(x)
            times[name].append((time.perf_counter() - start) * 1000)
    result = {
        "size": args.size,
        "keypoints": args.keypoints,
        "calibration": str(Path(args.calibration).relative_to(ROOT)),
        "held_out": str(HELD_OUT.relative_to(ROOT)),
        "note": "each convolution: all quantised except the first and this one",
        "per_conv": per_conv,
        "variants": {
            name: {"ms_per_image": statistics.median(times[name]), **fid[name]} for name in variants
        },
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
    }
    write_json(args.out, result)
    for row in per_conv:
        fid_text = f"recall@1px {row['recall@1px']:.3f}, cos {row['cosine']:.4f}"
        print(f"conv {row['index']} {row['name']}: {fid_text}")
    for name, v in result["variants"].items():
        print(f"{name}: {v['ms_per_image']:.0f} ms, recall@1px {v['recall@1px']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
