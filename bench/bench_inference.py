"""Frames/s and peak memory of FlowDBN (PWC-Net prewarping, N=5) deblurring 1280x720 video, naive vs streaming.

Variants:
  naive      every window recomputed from scratch: N=5 PWC-Net feature pyramids per output frame
  streaming  each frame's pyramid computed once when it enters the window and reused (deblur.py's default)
  folded     streaming with DBN's BatchNorm folded into its convolutions (deblur.py --fold_batchnorm)
  channels_last  streaming with the model in channels-last memory format (deblur.py --channels_last)
  bf16       streaming under bfloat16 autocast (deblur.py --amp=bf16 --no-channels_last --no-fold_batchnorm)
  bf16_channels_last         bf16 + channels-last (--amp=bf16 --no-fold_batchnorm)
  bf16_channels_last_folded  bf16 + channels-last + BatchNorm folded: the fast path (--amp=bf16; what
             --amp=auto, the default, runs on a CPU with AMX or AVX512-BF16 and on bf16 tensor cores)
Every variant is set up by deblur.py's own choose-precision pieces (contrib.precision.Precision,
deblur.prepare_model, deblur_stream(..., precision=...)). Every row reports the GFLOP/s it achieves
(FLOPs per frame counted as bench_flops.py counts them) and its fraction of the matrix-product rate of
its own precision (a 2048^3 float32 / bfloat16 product), measured in every round of the same process.
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
  DBN alone  DBN (N=5) on one window of --size, float32 vs channels-last vs bf16 vs bf16 + channels-last
           (+ folded), interleaved the same way (--dbn_variants; none to skip).
Frames are padded to multiples of --pad_multiple (default 8, what DBN needs, what main.py's evaluation
runs at and deblur.py's default).
Reference (issue 5): the original's code took about 27 s per 1280x720 frame on this 2-core machine;
target >= 1.5x faster in fp32 at the default settings. Issue 21 (on AMX machines): the fast path >= 3x
float32 and >= 60% of the bf16 matmul rate for FlowDBN, >= 6x for DBN alone.

    .venv/bin/python bench/bench_inference.py [--quick] [--variants naive streaming] [--dbn_variants float32 bf16]
        [--no_memory] [--json FILE]
"""
import argparse
import copy
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
from bench_flops import frame_flops  # noqa: I100
from common import (
    base_parser,
    emit,
    finish_parsing,
    format_range,
    machine,
    matmul_rates,
    measure,
    peak_memory_mib,
    print_table,
    reset_peak_memory,
    run_child,
    stats,
    synchronize,
)

import deblur  # noqa: E402
from contrib.precision import FLOAT32, Precision  # noqa: E402
from models.dbn import DBN  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_FRAME_S = 27.0
# (precision, fold BatchNorm) of every variant, as deblur.py's --amp / --channels_last / --fold_batchnorm set them.
SETUPS: Dict[str, Tuple[Precision, bool]] = {
    "float32": (FLOAT32, False), "naive": (FLOAT32, False), "streaming": (FLOAT32, False), "folded": (FLOAT32, True),
    "channels_last": (Precision(None, True), False), "bf16": (Precision(torch.bfloat16, False), False),
    "bf16_channels_last": (Precision(torch.bfloat16, True), False),
    "bf16_channels_last_folded": (Precision(torch.bfloat16, True), True)}
VARIANTS = ("naive", "streaming", "folded", "channels_last", "bf16", "bf16_channels_last", "bf16_channels_last_folded")
DBN_VARIANTS = ("float32", "channels_last", "bf16", "bf16_channels_last", "bf16_channels_last_folded")
MATMUL_SIZE = 2048


def flowdbn(sequence_length: int, device: torch.device) -> FlowDBN:
    """FlowDBN with random weights (a PWC-Net checkpoint of random weights), in eval mode on the device."""
    torch.manual_seed(0)
    pwcnet = PWCNet(div_flow=0.05)
    model = FlowDBN(sequence_length=sequence_length,
                    prewarping_state_dict={f"model.{k}": v for k, v in pwcnet.state_dict().items()})
    return model.eval().to(device)


def build(sequence_length: int, device: torch.device, variant: str) -> FlowDBN:
    """The variant's FlowDBN, folded and in the memory format its precision asks for (deblur.prepare_model)."""
    precision, fold = SETUPS[variant]
    return deblur.prepare_model(flowdbn(sequence_length, device), precision, fold)


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
    precision = SETUPS[options.variant][0]
    frames = video(options.frames, options.width, options.height)
    writer = TimingWriter(device)
    reset_peak_memory(device)
    count = deblur.deblur_stream(model, iter((f"{i}", f) for i, f in enumerate(frames)), options.sequence_length,
                                 options.pad_multiple, device, writer, reuse_pyramids=options.variant != "naive",
                                 precision=precision)
    intervals = np.diff(writer.times).tolist()
    timed = intervals[options.warmup:len(intervals) - 2] if len(intervals) > options.warmup + 2 else intervals
    return {"variant": options.variant, "frames": count, "width": options.width, "height": options.height,
            "frame_s": stats(timed), "frames_per_s": 1.0 / stats(timed)["median"], "all_intervals_s": intervals,
            **peak_memory_mib(device)}


def interleave(runs: Dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int,
               matmul_size: int) -> Dict[str, Any]:
    """Seconds of every run, in rotating order round after round, and the matmul rates measured in every round."""
    names = list(runs)
    times: Dict[str, List[float]] = {name: [] for name in names}
    rates: Dict[str, List[float]] = {"fp32": [], "bf16": []}
    for round_index in range(warmup + repeats):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            seconds = measure(runs[name], device, 1, 0)[0]
            if round_index >= warmup:
                times[name].append(seconds)
        if round_index >= warmup:
            for key, value in matmul_rates(device, matmul_size).items():
                rates[key].append(value)
    return {"times": times, "matmul_gflops": {key: stats(values) for key, values in rates.items()}}


def paired(times: Dict[str, List[float]], baseline: str) -> Dict[str, float]:
    """Median over rounds of baseline's time / each variant's time in the same round."""
    return {name: float(np.median(np.array(times[baseline]) / np.array(values))) for name, values in times.items()}


def rates(seconds: float, flops: float, variant: str, matmul: Dict[str, Any]) -> Dict[str, Any]:
    """Achieved GFLOP/s and the fraction of the same run's matmul rate in the variant's precision."""
    key = "bf16" if SETUPS[variant][0].amp_dtype == torch.bfloat16 else "fp32"
    gflops = flops / seconds / 1e9
    return {"tflop": flops / 1e12, "gflops": gflops, "matmul_precision": key,
            "fraction_of_matmul": gflops / matmul[key]["median"]}


def interleaved(options: argparse.Namespace, variants: List[str]) -> Dict[str, Any]:
    """Per-frame time of every FlowDBN variant, measured in rotating order on the same window."""
    device = options.device
    base = flowdbn(options.sequence_length, device)
    models = {name: base if name in ("naive", "streaming") else
              deblur.prepare_model(copy.deepcopy(base), *SETUPS[name]) for name in variants}
    frames = [deblur.pad_to_multiple(torch.from_numpy(f).to(device).permute(2, 0, 1)[None].float() / 255.0,
                                      options.pad_multiple)
              for f in video(options.sequence_length, options.width, options.height)]
    inputs = {name: [SETUPS[name][0].input(frame) for frame in frames] for name in variants}
    cached = {}
    with torch.inference_mode():
        for name, model in models.items():
            with SETUPS[name][0].autocast(device):
                cached[name] = [model.frame_pyramid(frame) for frame in inputs[name][:-1]]

    def one_frame(name: str) -> None:
        model, window = models[name], inputs[name]
        with torch.inference_mode(), SETUPS[name][0].autocast(device):
            if name == "naive":
                model({f"input{i + 1}": frame for i, frame in enumerate(window)})
            else:  # the window's older pyramids are cached; only the newest frame's is computed
                model({f"input{i + 1}": frame for i, frame in enumerate(window)},
                      pyramids=cached[name] + [model.frame_pyramid(window[-1])])

    result = interleave({name: (lambda name=name: one_frame(name)) for name in variants}, device, options.warmup,
                        options.repeats, options.matmul_size)
    times = result.pop("times")
    result["frame_s"] = {name: stats(values) for name, values in times.items()}
    if "naive" in times:
        result["speedup_vs_naive"] = paired(times, "naive")
    if "streaming" in times:
        result["speedup_vs_streaming"] = paired(times, "streaming")
    return result


def dbn_alone(options: argparse.Namespace, variants: List[str]) -> Dict[str, Any]:
    """Per-window time of DBN (N frames of --size) in every precision variant, interleaved; rows with GFLOP/s."""
    device = options.device
    torch.manual_seed(0)
    base = DBN(sequence_length=options.sequence_length, init_type="fan_in").eval().to(device)
    models = {name: deblur.prepare_model(copy.deepcopy(base), *SETUPS[name]) for name in variants}
    frames = [deblur.pad_to_multiple(torch.from_numpy(f).to(device).permute(2, 0, 1)[None].float() / 255.0,
                                      options.pad_multiple)
              for f in video(options.sequence_length, options.width, options.height)]
    examples = {name: {f"input{i + 1}": SETUPS[name][0].input(frame) for i, frame in enumerate(frames)}
                for name in variants}

    def forward(name: str) -> None:
        with torch.inference_mode(), SETUPS[name][0].autocast(device):
            models[name](examples[name])

    result = interleave({name: (lambda name=name: forward(name)) for name in variants}, device, options.warmup,
                        options.repeats, options.matmul_size)
    flops = frame_flops(options.width, options.height, options.sequence_length)["DBN (N frames)"]
    baseline = "float32" if "float32" in variants else variants[0]
    speedup = paired(result["times"], baseline)
    rows = [{"variant": name, "window_s": stats(values), "speedup_vs_float32": speedup[name] if baseline == "float32"
             else None, **rates(stats(values)["median"], flops, name, result["matmul_gflops"])}
            for name, values in result["times"].items()]
    return {"rows": rows, "matmul_gflops": result["matmul_gflops"]}


def fraction(row: Dict[str, Any]) -> str:
    """'61% of bf16' for a table cell."""
    return f"{row['fraction_of_matmul']:.0%} of {row['matmul_precision']}" if "fraction_of_matmul" in row else "-"


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=3)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="FlowDBN variants (default: all; quick: naive streaming bf16_channels_last_folded)")
    parser.add_argument("--dbn_variants", nargs="*", choices=DBN_VARIANTS, default=None,
                        help="DBN-alone variants (default all; quick float32 bf16_channels_last_folded; none: skip)")
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("WIDTH", "HEIGHT"),
                        help="frame size (default 1280 720, quick 256 128)")
    parser.add_argument("--lengths", type=int, nargs="*", default=None,
                        help="video lengths for the memory-growth check of the streaming variant at 256x128 "
                             "(default 6 24; quick 4 8; none to skip)")
    parser.add_argument("--pad_multiple", type=int, default=8, help="pad frames to multiples of this")
    parser.add_argument("--matmul_size", type=int, default=None,
                        help=f"side of the matrix product giving the matmul rates (default {MATMUL_SIZE}, quick 256)")
    parser.add_argument("--no_memory", action="store_true", help="skip the per-variant memory processes")
    parser.add_argument("--no_speed", action="store_true", help="skip the interleaved speed measurement")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)  # child process
    options = finish_parsing(parser)
    options.width, options.height = options.size or ((256, 128) if options.quick else (1280, 720))
    options.matmul_size = options.matmul_size or (256 if options.quick else MATMUL_SIZE)
    if options.variant is not None:
        emit(child(options), None)
        return
    fast = "bf16_channels_last_folded"
    variants = options.variants or (["naive", "streaming", fast] if options.quick else list(VARIANTS))
    dbn_variants = options.dbn_variants if options.dbn_variants is not None else (
        ["float32", fast] if options.quick else list(DBN_VARIANTS))
    lengths = options.lengths if options.lengths is not None else ([4, 8] if options.quick else [6, 24])
    speed = None if options.no_speed else interleaved(options, variants)
    dbn = dbn_alone(options, dbn_variants) if dbn_variants and not options.no_speed else None
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
    flops = frame_flops(options.width, options.height, options.sequence_length) if speed is not None else {}
    rows = []
    for name in variants:
        row: Dict[str, Any] = {"variant": name}
        if speed is not None:
            seconds = speed["frame_s"][name]["median"]
            row.update({"frame_s": speed["frame_s"][name], "frames_per_s": 1.0 / seconds,
                        "speedup_vs_naive": speed.get("speedup_vs_naive", {}).get(name),
                        "speedup_vs_streaming": speed.get("speedup_vs_streaming", {}).get(name),
                        "speedup_vs_reference": REFERENCE_FRAME_S / seconds if full_hd else None,
                        **rates(seconds, flops["FlowDBN, per frame" if name == "naive" else "FlowDBN, streaming"],
                                name, speed["matmul_gflops"])})
        stream = next((m for m in memory if m["variant"] == name), None)
        if stream is not None:
            row["stream"] = stream
        rows.append(row)
    memory_key = "peak_cuda_mib" if options.device.type == "cuda" else "peak_rss_mib"
    document = {"bench": "inference", "machine": machine(options.device),
                "config": {"model": "FlowDBN (PWC-Net)", "sequence_length": options.sequence_length,
                           "width": options.width, "height": options.height, "pad_multiple": options.pad_multiple,
                           "repeats": options.repeats, "warmup": options.warmup, "matmul_size": options.matmul_size},
                "reference_frame_s": REFERENCE_FRAME_S, "rows": rows,
                "matmul_gflops": speed["matmul_gflops"] if speed is not None else None, "dbn_alone": dbn,
                "memory_growth": [{"frames": g["frames"], memory_key: g[memory_key]} for g in growth]}
    emit(document, options.json)
    print_table(["variant", "s/frame median (min-max)", "frames/s", "vs naive (paired)", "vs streaming (paired)",
                 "vs 27 s reference", "GFLOP/s", "of matmul rate", "stream s/frame", memory_key.replace("_", " ")],
                [[row["variant"], format_range(row["frame_s"]) if "frame_s" in row else "-",
                  f"{row['frames_per_s']:.4f}" if "frames_per_s" in row else "-",
                  f"{row['speedup_vs_naive']:.3f}x" if row.get("speedup_vs_naive") else "-",
                  f"{row['speedup_vs_streaming']:.3f}x" if row.get("speedup_vs_streaming") else "-",
                  f"{row['speedup_vs_reference']:.2f}x" if row.get("speedup_vs_reference") else "-",
                  f"{row['gflops']:.1f}" if "gflops" in row else "-", fraction(row),
                  format_range(row["stream"]["frame_s"]) if "stream" in row else "-",
                  f"{row['stream'][memory_key]:.0f}" if "stream" in row else "-"] for row in rows])
    if speed is not None:
        print("matmul GFLOP/s in the same rounds: " + ", ".join(
            f"{key} {format_range(value, digits=1)}" for key, value in speed["matmul_gflops"].items()))
    if dbn is not None:
        print_table(["DBN alone", "s/window median (min-max)", "vs float32 (paired)", "GFLOP/s", "of matmul rate"],
                    [[row["variant"], format_range(row["window_s"]),
                      f"{row['speedup_vs_float32']:.2f}x" if row["speedup_vs_float32"] else "-",
                      f"{row['gflops']:.1f}", fraction(row)] for row in dbn["rows"]])
        print("matmul GFLOP/s in the DBN rounds: " + ", ".join(
            f"{key} {format_range(value, digits=1)}" for key, value in dbn["matmul_gflops"].items()))
    if growth:
        print_table(["streaming 256x128: frames", memory_key.replace("_", " ")],
                    [[g["frames"], f"{g[memory_key]:.0f}"] for g in growth])


if __name__ == "__main__":
    sys.exit(main())
