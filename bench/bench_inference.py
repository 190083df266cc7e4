"""Frames/s and peak memory of FlowDBN (PWC-Net prewarping, N=5) deblurring 1280x720 video, naive vs streaming.

The video is deblurred by deblur.py's own `deblur_stream` (sliding window, clamped ends, frames padded
to multiples of 64, inference mode) from frames held in memory (decoding is not timed). Variants:
  naive      every window recomputed from scratch: N=5 PWC-Net feature pyramids per output frame
  streaming  each frame's pyramid computed once when it enters the window and reused (default)
  folded     streaming with DBN's BatchNorm folded into its convolutions (deblur.py --fold_batchnorm)
  channels_last  streaming with the model's weights in channels-last memory format (convolutions follow)
Frames are padded to multiples of --pad_multiple (default 8, what DBN needs and what main.py's
evaluation runs at; deblur.py pads FlowDBN to 64 by default, i.e. 768 instead of 720 rows, +6.7%).
Protocol: a video of `warmup + repeats + 2` frames; the time of each output frame is the time between
two consecutive outputs, which in the steady state includes decoding nothing, padding and computing
the pyramid of the one new frame, the 4 flows, the warps and DBN. The first `warmup` outputs (the
first one also computes the pyramids of the first window) and the last two (whose windows get no new
frame) are not timed; median and min–max of the rest. Each variant runs in its own process, so its
peak resident memory is its own. With --lengths, the streaming variant's peak memory is also
measured for videos of several lengths at a small size: it must not grow with the video.
Reference (issue 5): the original's code took about 27 s per 1280x720 frame on this 2-core machine;
target >= 1.5x faster in fp32 at the default settings.

    .venv/bin/python bench/bench_inference.py [--quick] [--variants naive streaming] [--json FILE]
"""
import argparse
import os
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np
import torch

from common import (base_parser, emit, finish_parsing, format_range, machine, peak_memory_mib,  # noqa: I100
                    print_table, reset_peak_memory, run_child, stats, synchronize)

import deblur  # noqa: E402
from contrib.fusion import fold_batchnorm  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_FRAME_S = 27.0
VARIANTS = ("naive", "streaming", "folded", "channels_last")


def build(sequence_length: int, device: torch.device, variant: str) -> FlowDBN:
    """FlowDBN with random weights (a PWC-Net checkpoint of random weights), in eval mode on the device."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "pwcnet.ckpt")
        pwcnet = PWCNet(argparse.Namespace(), div_flow=0.05)
        torch.save({"state_dict": {f"model.{k}": v for k, v in pwcnet.state_dict().items()}}, path)
        model = FlowDBN(argparse.Namespace(validation_dataset_sequence_length=sequence_length),
                        pretrained_pwcnet=path)
    model.eval().to(device)
    if variant == "folded":
        fold_batchnorm(model)
    if variant == "channels_last":
        model.to(memory_format=torch.channels_last)
    return model


class TimingWriter:
    """Records when each output frame arrives (after synchronising the device)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: List[float] = [time.perf_counter()]

    def write(self, name: str, frame: np.ndarray) -> None:
        synchronize(self.device)
        self.times.append(time.perf_counter())


def video(count: int, width: int, height: int) -> List[np.ndarray]:
    """Smooth random frames (content does not change the amount of work)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((count, height // 16 + 1, width // 16 + 1, 3))
    return [(np.kron(c, np.ones((16, 16, 1)))[:height, :width] * 255).astype(np.uint8) for c in coarse]


def child(options: argparse.Namespace) -> Dict[str, Any]:
    """Measure one variant (or one video length) in this process."""
    device = options.device
    model = build(options.sequence_length, device, options.variant)
    frames = video(options.frames, options.width, options.height)
    writer = TimingWriter(device)
    reset_peak_memory(device)
    count = deblur.deblur_stream(model, iter((f"{i}", f) for i, f in enumerate(frames)), options.sequence_length,
                                 options.pad_multiple, device, writer, reuse_pyramids=options.variant != "naive")
    intervals = np.diff(writer.times).tolist()
    timed = intervals[options.warmup:len(intervals) - 2] if len(intervals) > options.warmup + 2 else intervals
    return {"variant": options.variant, "frames": count, "width": options.width, "height": options.height,
            "frame_s": stats(timed), "frames_per_s": 1.0 / stats(timed)["median"], "all_intervals_s": intervals,
            **peak_memory_mib(device)}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=3)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="default: naive streaming folded channels_last (quick: naive streaming)")
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("WIDTH", "HEIGHT"),
                        help="frame size (default 1280 720, quick 256 128)")
    parser.add_argument("--lengths", type=int, nargs="*", default=None,
                        help="video lengths for the memory-growth check of the streaming variant at 256x128 "
                             "(default 6 24; quick 4 8; none to skip)")
    parser.add_argument("--pad_multiple", type=int, default=8, help="pad frames to multiples of this")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)  # child process
    options = finish_parsing(parser)
    options.width, options.height = options.size or ((256, 128) if options.quick else (1280, 720))
    if options.variant is not None:
        emit(child(options), None)
        return
    variants = options.variants or (["naive", "streaming"] if options.quick else list(VARIANTS))
    lengths = options.lengths if options.lengths is not None else ([4, 8] if options.quick else [6, 24])
    common = ["--device", str(options.device), "--warmup", str(options.warmup), "--repeats", str(options.repeats),
              "--sequence_length", str(options.sequence_length), "--pad_multiple", str(options.pad_multiple)]
    if options.threads:
        common += ["--threads", str(options.threads)]
    frames = options.warmup + options.repeats + 2
    rows = [run_child("bench_inference.py", common + ["--variant", variant, "--frames", str(frames), "--size",
                                                      str(options.width), str(options.height)])
            for variant in variants]
    naive = next((row for row in rows if row["variant"] == "naive"), None)
    for row in rows:
        row["speedup_vs_naive"] = naive["frame_s"]["median"] / row["frame_s"]["median"] if naive else None
        row["speedup_vs_reference"] = (REFERENCE_FRAME_S / row["frame_s"]["median"]
                                       if (options.width, options.height) == (1280, 720) else None)
    growth = [run_child("bench_inference.py", common + ["--variant", "streaming", "--frames", str(length),
                                                        "--size", "256", "128"]) for length in lengths]
    memory_key = "peak_cuda_mib" if options.device.type == "cuda" else "peak_rss_mib"
    document = {"bench": "inference", "machine": machine(options.device),
                "config": {"model": "FlowDBN (PWC-Net)", "sequence_length": options.sequence_length,
                           "width": options.width, "height": options.height, "pad_multiple": options.pad_multiple,
                           "repeats": options.repeats,
                           "warmup": options.warmup},
                "reference_frame_s": REFERENCE_FRAME_S, "rows": rows,
                "memory_growth": [{"frames": g["frames"], memory_key: g[memory_key]} for g in growth]}
    emit(document, options.json)
    print_table(["variant", "s/frame median (min-max)", "frames/s", "vs naive", "vs 27 s reference",
                 memory_key.replace("_", " ")],
                [[row["variant"], format_range(row["frame_s"]), f"{row['frames_per_s']:.4f}",
                  f"{row['speedup_vs_naive']:.3f}x" if row["speedup_vs_naive"] else "-",
                  f"{row['speedup_vs_reference']:.2f}x" if row["speedup_vs_reference"] else "-",
                  f"{row[memory_key]:.0f}"] for row in rows])
    if growth:
        print_table(["streaming 256x128: frames", memory_key.replace("_", " ")],
                    [[g["frames"], f"{g[memory_key]:.0f}"] for g in growth])


if __name__ == "__main__":
    sys.exit(main())
