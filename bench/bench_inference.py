"""Frames/s and peak memory of FlowDBN (PWC-Net prewarping, N=5) deblurring 1280x720 video, naive vs streaming.

Variants:
  naive      every window recomputed from scratch: N=5 PWC-Net feature pyramids per output frame
  streaming  each frame's pyramid computed once when it enters the window and reused (deblur.py's default)
  folded     streaming with DBN's BatchNorm folded into its convolutions (deblur.py --fold_batchnorm)
  channels_last  streaming with the model in channels-last memory format (deblur.py --channels_last)
Two measurements, because other processes on a shared machine change the speed from minute to minute:
  speed    one process holds all variants and computes one output frame with each in turn (the order
           rotating every round), on the same window: a steady-state frame = the new frame's pyramid
           (streaming; all 5 for naive) + 4 flows + warps + DBN. `--warmup` untimed rounds, then
           `--repeats` timed ones; median and min–max per variant, and the median of the per-round
           ratios to naive (robust to load drifting between rounds).
  memory   each variant deblurs a short video of `warmup + repeats + 2` frames through deblur.py's own
           `deblur_stream` in its own process; its peak resident memory (or peak CUDA memory) and its
           frames/s over the steady-state outputs are reported. With --lengths, the streaming
           variant's peak memory is also measured for videos of several lengths at 256x128: it must not
           grow with the video.
Frames are padded to multiples of --pad_multiple (default 8, what DBN needs, what main.py's evaluation
runs at and deblur.py's default).
Reference (issue 5): the original's code took about 27 s per 1280x720 frame on this 2-core machine;
target >= 1.5x faster in fp32 at the default settings.

    .venv/bin/python bench/bench_inference.py [--quick] [--variants naive streaming] [--no_memory] [--json FILE]
"""
import argparse
import copy
import sys
import time
from typing import Any, Dict, List

import numpy as np
import torch
from common import (  # noqa: I100
    base_parser,
    emit,
    finish_parsing,
    format_range,
    machine,
    measure,
    peak_memory_mib,
    print_table,
    reset_peak_memory,
    run_child,
    stats,
    synchronize,
)

import deblur  # noqa: E402
from contrib.fusion import fold_batchnorm  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_FRAME_S = 27.0
VARIANTS = ("naive", "streaming", "folded", "channels_last")


def build(sequence_length: int, device: torch.device, variant: str) -> FlowDBN:
    """FlowDBN with random weights (a PWC-Net checkpoint of random weights), in eval mode on the device."""
    torch.manual_seed(0)
    pwcnet = PWCNet(div_flow=0.05)
    model = FlowDBN(sequence_length=sequence_length,
                    prewarping_state_dict={f"model.{k}": v for k, v in pwcnet.state_dict().items()})
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
    """Memory (and stream frames/s) of one variant over a short video, in this process."""
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


def interleaved(options: argparse.Namespace, variants: List[str]) -> Dict[str, Any]:
    """Per-frame time of every variant, measured in rotating order on the same window."""
    device = options.device
    base = build(options.sequence_length, device, "streaming")
    models = {"naive": base, "streaming": base}
    if "folded" in variants:
        models["folded"] = copy.deepcopy(base)
        fold_batchnorm(models["folded"])
    if "channels_last" in variants:
        models["channels_last"] = copy.deepcopy(base).to(memory_format=torch.channels_last)
    frames = [deblur.pad_to_multiple(torch.from_numpy(f).to(device).permute(2, 0, 1)[None].float() / 255.0,
                                      options.pad_multiple)
              for f in video(options.sequence_length, options.width, options.height)]
    example = {f"input{i + 1}": frame for i, frame in enumerate(frames)}
    with torch.inference_mode():
        cached = {name: [model.frame_pyramid(frame) for frame in frames[:-1]] for name, model in models.items()}

    def one_frame(name: str) -> None:
        with torch.inference_mode():
            model = models[name]
            if name == "naive":
                model(example)
            else:  # the window's older pyramids are cached; only the newest frame's is computed
                model(example, pyramids=cached[name] + [model.frame_pyramid(frames[-1])])

    times: Dict[str, List[float]] = {name: [] for name in variants}
    for round_index in range(options.warmup + options.repeats):
        order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
        for name in order:
            seconds = measure(lambda name=name: one_frame(name), device, 1, 0)[0]
            if round_index >= options.warmup:
                times[name].append(seconds)
    result: Dict[str, Any] = {"frame_s": {name: stats(values) for name, values in times.items()}}
    if "naive" in times:
        result["speedup_vs_naive"] = {name: float(np.median(np.array(times["naive"]) / np.array(values)))
                                      for name, values in times.items()}
    return result


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
    parser.add_argument("--no_memory", action="store_true", help="skip the per-variant memory processes")
    parser.add_argument("--no_speed", action="store_true", help="skip the interleaved speed measurement")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)  # child process
    options = finish_parsing(parser)
    options.width, options.height = options.size or ((256, 128) if options.quick else (1280, 720))
    if options.variant is not None:
        emit(child(options), None)
        return
    variants = options.variants or (["naive", "streaming"] if options.quick else list(VARIANTS))
    lengths = options.lengths if options.lengths is not None else ([4, 8] if options.quick else [6, 24])
    speed = None if options.no_speed else interleaved(options, variants)
    common = ["--device", str(options.device), "--warmup", str(options.warmup), "--repeats", str(options.repeats),
              "--sequence_length", str(options.sequence_length), "--pad_multiple", str(options.pad_multiple)]
    if options.threads:
        common += ["--threads", str(options.threads)]
    frames = options.warmup + options.repeats + 2
    memory = [] if options.no_memory else [
        run_child("bench_inference.py", common + ["--variant", variant, "--frames", str(frames), "--size",
                                                  str(options.width), str(options.height)])
        for variant in variants]
    growth = [run_child("bench_inference.py", common + ["--variant", "streaming", "--frames", str(length),
                                                        "--size", "256", "128"]) for length in lengths]
    full_hd = (options.width, options.height) == (1280, 720)
    rows = []
    for name in variants:
        row: Dict[str, Any] = {"variant": name}
        if speed is not None:
            row.update({"frame_s": speed["frame_s"][name], "frames_per_s": 1.0 / speed["frame_s"][name]["median"],
                        "speedup_vs_naive": speed.get("speedup_vs_naive", {}).get(name),
                        "speedup_vs_reference": (REFERENCE_FRAME_S / speed["frame_s"][name]["median"]
                                                 if full_hd else None)})
        stream = next((m for m in memory if m["variant"] == name), None)
        if stream is not None:
            row["stream"] = stream
        rows.append(row)
    memory_key = "peak_cuda_mib" if options.device.type == "cuda" else "peak_rss_mib"
    document = {"bench": "inference", "machine": machine(options.device),
                "config": {"model": "FlowDBN (PWC-Net)", "sequence_length": options.sequence_length,
                           "width": options.width, "height": options.height, "pad_multiple": options.pad_multiple,
                           "repeats": options.repeats, "warmup": options.warmup},
                "reference_frame_s": REFERENCE_FRAME_S, "rows": rows,
                "memory_growth": [{"frames": g["frames"], memory_key: g[memory_key]} for g in growth]}
    emit(document, options.json)
    print_table(["variant", "s/frame median (min-max)", "frames/s", "vs naive (paired)", "vs 27 s reference",
                 "stream s/frame", memory_key.replace("_", " ")],
                [[row["variant"], format_range(row["frame_s"]) if "frame_s" in row else "-",
                  f"{row['frames_per_s']:.4f}" if "frames_per_s" in row else "-",
                  f"{row['speedup_vs_naive']:.3f}x" if row.get("speedup_vs_naive") else "-",
                  f"{row['speedup_vs_reference']:.2f}x" if row.get("speedup_vs_reference") else "-",
                  format_range(row["stream"]["frame_s"]) if "stream" in row else "-",
                  f"{row['stream'][memory_key]:.0f}" if "stream" in row else "-"] for row in rows])
    if growth:
        print_table(["streaming 256x128: frames", memory_key.replace("_", " ")],
                    [[g["frames"], f"{g[memory_key]:.0f}"] for g in growth])

if __name__ == "__main__":
    sys.exit(main())
