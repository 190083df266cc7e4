"""FLOPs per 1280x720 frame of DBN, PWC-Net and FlowDBN and per training step (torch.utils.flop_counter), and
the achieved fraction of the peak throughput that applies.

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode on meta tensors (nothing is computed,
so this takes seconds). The counter counts convolutions and matrix products (2 FLOPs per
multiply-add); elementwise work (BatchNorm, activations, the correlation's 81 dot products, warping)
is not counted, as in the issue's reference figures (2.47 TFLOP per frame: 1.31 in PWC-Net for the 4
pairs, 1.16 in DBN). Rows:
  DBN (N=5)                 DBN on 5 frames (15 input channels)
  PWC-Net, original          4 pairs, both images of every pair through the pyramid (8 pyramids)
  PWC-Net, per frame         FlowDBN's forward: each of the 5 frames' pyramids once
  PWC-Net, streaming         a sliding window over a video: 1 new pyramid per output frame
  FlowDBN DBN part           DBN on 5 frames + 4 warped ones (27 channels)
  FlowDBN (per frame / streaming)   the sums
  training step             --model forward (frozen PWC-Net without autograd), DBNLoss and backward on
                            the batch that runs: --batch_size examples x --samples_per_example crops
                            of --size^2 (default: the paper's step, 8 x 8 crops of 128^2, N=5)
With --training_json / --inference_json (outputs of bench_training.py / bench_inference.py), the
measured times are turned into achieved FLOP/s and a fraction of the peak; the training step is
counted again for the batch that bench ran (its config). On CUDA the peak is the GPU's dense
data-sheet figure (GPU_PEAKS; sparse figures do not apply to these dense convolutions) for the
precision that actually runs: float32 convolutions run as TF32 where torch.backends.cudnn.allow_tf32
is True (PyTorch's default; matrix products stay IEEE float32 by default, but this work is almost all
convolutions), bf16/fp16 at the half-precision tensor-core rate; --peak_tflops overrides the table.
On the CPU the peak is the larger of the measured matrix-product rate (below; bfloat16's for bf16)
and an estimate cores x clock x FLOPs/cycle (--cpu_flops_per_cycle, default 32 = two 256-bit FMA
pipes, as on AMD Zen 4, whose AVX-512 is double-pumped; the clock is the highest 'cpu MHz' in
/proc/cpuinfo unless --cpu_ghz is given). The FLOP/s of a large float32 (and bfloat16) matrix
product are measured too, as what the BLAS actually reaches on the machine at that moment.

    .venv/bin/python bench/bench_flops.py [--quick] [--model FlowDBN|DBN] [--sequence_length N] [--batch_size B]
        [--samples_per_example S] [--size C] [--training_json T.json] [--inference_json I.json] [--peak_tflops P]
"""
import json
import os
import sys
from typing import Any, Dict, List, Optional

import torch
from common import base_parser, emit, finish_parsing, machine, matmul_flops, print_table  # noqa: I100
from torch.utils.flop_counter import FlopCounterMode

import runtime  # noqa: E402
from losses.dbn_loss import DBNLoss  # noqa: E402
from models.dbn import DBN  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_TFLOP = {"FlowDBN": 2.47, "PWC-Net": 1.31, "DBN": 1.16}
# Dense data-sheet peaks in TFLOP/s: float32 without tensor cores, TF32 and bf16/fp16 on tensor cores (fp32
# accumulation). The data sheets' larger "with sparsity" figures need 2:4-sparse weights: not applicable here.
# None: no such tensor-core mode (V100 and T4 have no TF32; their half figure is fp16, they have no bf16).
# The first name contained in the device's name wins, so the more specific names come first.
GPU_PEAKS = {"H100 PCIe": (51.0, 378.0, 756.0), "H100 NVL": (60.0, 418.0, 835.0), "H200": (67.0, 495.0, 990.0),
             "H100": (67.0, 495.0, 990.0), "A100": (19.5, 156.0, 312.0), "L40S": (91.6, 183.0, 362.0),
             "L4": (30.3, 60.0, 121.0), "A10": (31.2, 62.5, 125.0), "RTX 4090": (82.6, 82.6, 165.0),
             "V100": (15.7, None, 125.0), "T4": (8.1, None, 65.0)}
PRECISIONS = ("fp32", "tf32", "bf16/fp16")
MODELS = ("FlowDBN", "DBN")


def count(fn) -> float:
    """FLOPs counted while running fn()."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def flowdbn(sequence_length: int) -> FlowDBN:
    pwcnet = PWCNet(div_flow=0.05)
    return FlowDBN(sequence_length=sequence_length,
                   prewarping_state_dict={f"model.{k}": v for k, v in pwcnet.state_dict().items()})


def frame_flops(width: int, height: int, sequence_length: int) -> Dict[str, float]:
    """FLOPs of every row for one output frame of width x height."""
    meta = torch.device("meta")
    frames = [torch.empty(1, 3, height, width, device=meta) for _ in range(sequence_length)]
    example = {f"input{i + 1}": frame for i, frame in enumerate(frames)}
    with meta:  # built without initialising weights: only the shapes count
        model = flowdbn(sequence_length).eval()
        dbn = DBN(sequence_length=sequence_length).eval()
    pwc = model.flowdbn.warping_network.network
    neighbours = sequence_length - 1
    batch = torch.empty(neighbours, 3, height, width, device=meta)
    reference = sequence_length // 2
    result: Dict[str, float] = {}
    with torch.no_grad():
        result["DBN (N frames)"] = count(lambda: dbn(example))
        result["PWC-Net, original (2 pyramids per pair)"] = count(lambda: pwc({"input1": batch, "input2": batch}))
        result["PWC-Net, per frame (1 pyramid per frame)"] = count(
            lambda: model.flowdbn.warping_network(frames, reference))
        one_pyramid = count(lambda: pwc.pyramid(frames[0]))
        result["PWC-Net, streaming (1 new pyramid per output)"] = (
            result["PWC-Net, per frame (1 pyramid per frame)"] - (sequence_length - 1) * one_pyramid)
        result["one pyramid"] = one_pyramid
        total = count(lambda: model(example))
    result["FlowDBN DBN part (2N-1 frames)"] = total - result["PWC-Net, per frame (1 pyramid per frame)"]
    result["FlowDBN, original"] = (result["FlowDBN DBN part (2N-1 frames)"]
                                   + result["PWC-Net, original (2 pyramids per pair)"])
    result["FlowDBN, per frame"] = total
    result["FlowDBN, streaming"] = total - (sequence_length - 1) * one_pyramid
    return result


def training_step_flops(model_name: str, crops: int, size: int, sequence_length: int) -> float:
    """FLOPs of one training step (forward, DBNLoss, backward) on `crops` crops of size^2, as main.py runs it."""
    meta = torch.device("meta")
    with meta:  # the same counts as on real tensors, without computing anything
        model = flowdbn(sequence_length) if model_name == "FlowDBN" else DBN(sequence_length=sequence_length)
    model_and_loss = runtime.ModelAndLoss(model, DBNLoss()).train()
    example = {f"input{i}": torch.empty(crops, 3, size, size, device=meta) for i in range(1, sequence_length + 1)}
    example["target1"] = torch.empty(crops, 3, size, size, device=meta)

    def step() -> None:
        loss_dict, _ = model_and_loss(example)
        loss_dict["total_loss"].backward()

    return count(step)


def cpu_peak_flops(flops_per_cycle: int, ghz: Optional[float]) -> Dict[str, Any]:
    """Estimated float32 peak of all cores (FLOP/s) and how it was estimated."""
    if ghz is None:
        megahertz = []
        try:
            with open("/proc/cpuinfo") as handle:
                megahertz = [float(line.split(":")[1]) for line in handle if line.startswith("cpu MHz")]
        except OSError:
            pass
        ghz = max(megahertz) / 1000.0 if megahertz else 3.0
    cores = os.cpu_count() or 1
    return {"peak_flops": cores * ghz * 1e9 * flops_per_cycle, "cores": cores, "ghz": ghz,
            "flops_per_cycle": flops_per_cycle}


def gpu_precision(variant: str) -> str:
    """The arithmetic a measured variant's convolutions run in on CUDA (a column of GPU_PEAKS)."""
    if variant in ("bf16", "fp16"):
        return "bf16/fp16"
    # fp32, channels_last, compile: cuDNN runs float32 convolutions as TF32 unless allow_tf32 is switched off.
    return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"


def gpu_peak_flops(name: str, precision: str) -> Optional[float]:
    """Dense data-sheet peak (FLOP/s) of the GPU named `name` in `precision`, None where unknown."""
    for key, peaks in GPU_PEAKS.items():
        if key.lower() in name.lower():
            peak = peaks[PRECISIONS.index(precision)]
            if peak is None and precision == "tf32":
                peak = peaks[0]  # no TF32 cores: float32 convolutions run at the float32 rate
            return peak * 1e12 if peak is not None else None
    return None


def achieved(document: Dict[str, Any], flops: float, seconds: float, variant: str,
             peaks: Dict[str, Any], peak_tflops: Optional[float] = None) -> Dict[str, Any]:
    """Achieved FLOP/s of one measured variant and its fraction of the peak that applies (or of peak_tflops)."""
    device = document["machine"]["device"]
    rate = flops / seconds
    entry = {"variant": variant, "seconds": seconds, "tflop": flops / 1e12, "achieved_gflops": rate / 1e9}
    if peak_tflops is not None:
        peak = peak_tflops * 1e12
        entry["peak_gflops"], entry["peak_from"] = peak / 1e9, "--peak_tflops"
    elif device.startswith("cuda"):
        precision = gpu_precision(variant)
        peak = gpu_peak_flops(document["machine"].get("gpu", ""), precision)
        entry["peak_gflops"], entry["peak_from"] = (peak / 1e9 if peak else None), f"GPU_PEAKS {precision} (dense)"
    else:
        # The clock in /proc/cpuinfo is the base clock; what a large matrix product reaches bounds the peak too.
        if variant in ("bf16", "fp16"):
            peak = peaks.get("matmul_bf16_gflops", 0.0) * 1e9 if variant == "bf16" else None
        else:
            peak = max(peaks["cpu"]["peak_flops"], peaks["matmul_fp32_gflops"] * 1e9)
        entry["peak_gflops"], entry["peak_from"] = (peak / 1e9 if peak else None), "CPU"
    entry["fraction_of_peak"] = rate / peak if peak else None
    return entry


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=1, default_warmup=0)
    parser.add_argument("--model", choices=MODELS, default="FlowDBN", help="the model of the training step")
    parser.add_argument("--sequence_length", type=int, default=5, help="N, frames per example")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="B, examples per training step (default 8, quick 1)")
    parser.add_argument("--samples_per_example", type=int, default=None,
                        help="S, crops per example (default 8, quick 4)")
    parser.add_argument("--size", type=int, default=None, help="crop size of the training step (default 128, quick 32)")
    parser.add_argument("--training_json", default=None, help="bench_training.py --json output")
    parser.add_argument("--inference_json", default=None, help="bench_inference.py --json output")
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the peak (TFLOP/s) for every fraction of peak, instead of the GPU table / CPU estimate")
    parser.add_argument("--cpu_flops_per_cycle", type=int, default=32, help="float32 FLOPs per cycle and core")
    parser.add_argument("--cpu_ghz", type=float, default=None, help="clock for the CPU peak estimate")
    options = finish_parsing(parser)
    defaults = (1, 4, 32) if options.quick else (8, 8, 128)  # quick: 4 crops of 32^2; else the paper's step
    batch_size, samples, size = (given if given is not None else default for given, default in
                                 zip((options.batch_size, options.samples_per_example, options.size), defaults))
    if options.sequence_length < 3 or options.sequence_length % 2 == 0:
        parser.error(f"--sequence_length must be odd and >= 3, got {options.sequence_length}")
    if min(batch_size, samples, size) < 1 or (options.peak_tflops is not None and options.peak_tflops <= 0):
        parser.error("--batch_size, --samples_per_example, --size and --peak_tflops must be positive")
    width, height = (256, 128) if options.quick else (1280, 720)
    rows = frame_flops(width, height, options.sequence_length)
    step = training_step_flops(options.model, batch_size * samples, size, options.sequence_length)
    per_crop = training_step_flops(options.model, 1, size, options.sequence_length)
    peaks: Dict[str, Any] = {"cpu": cpu_peak_flops(options.cpu_flops_per_cycle, options.cpu_ghz)}
    size_mm, budget_s = (1024, 0.3) if options.quick else (4096, 20.0)
    dtypes = {"fp32": torch.float32}
    if options.device.type == "cuda" or torch.backends.mkldnn.is_available():
        dtypes["bf16"] = torch.bfloat16
    for name, dtype in dtypes.items():
        flops, used = matmul_flops(options.device, dtype, size_mm, max(options.repeats, 5), budget_s)
        peaks[f"matmul_{name}_gflops"], peaks[f"matmul_{name}_size"] = flops / 1e9, used
    measured: List[Dict[str, Any]] = []
    if options.training_json:
        with open(options.training_json) as handle:
            training = json.load(handle)
        config = training["config"]  # count the batch that bench_training.py ran (always FlowDBN)
        measured_step = training_step_flops("FlowDBN", config["batch_size"] * config["samples_per_example"],
                                            config["crop"], config["sequence_length"])
        for row in training["rows"]:
            measured.append({"bench": "training step", **achieved(training, measured_step, row["step_s"]["median"],
                                                                   row["variant"], peaks, options.peak_tflops)})
    if options.inference_json:
        with open(options.inference_json) as handle:
            inference = json.load(handle)
        frame_size = (inference["config"]["width"], inference["config"]["height"])
        per_frame = rows if frame_size == (width, height) else frame_flops(*frame_size, options.sequence_length)
        for row in inference["rows"]:
            flops = per_frame["FlowDBN, per frame"] if row["variant"] == "naive" else per_frame["FlowDBN, streaming"]
            measured.append({"bench": "inference frame", **achieved(inference, flops, row["frame_s"]["median"],
                                                                     row["variant"], peaks, options.peak_tflops)})
    step_config = {"model": options.model, "batch_size": batch_size, "samples_per_example": samples,
                   "crops": batch_size * samples, "size": size, "sequence_length": options.sequence_length}
    document = {"bench": "flops", "machine": machine(options.device),
                "config": {"width": width, "height": height, "sequence_length": options.sequence_length},
                "tflop_per_frame": {k: v / 1e12 for k, v in rows.items()},
                "training_step": step_config, "training_step_tflop": step / 1e12,
                "training_step_tflop_per_crop": per_crop / 1e12, "reference_tflop": REFERENCE_TFLOP,
                "cuda_float32": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                                 "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32},
                "gpu_peaks_tflops": {name: dict(zip(PRECISIONS, values)) for name, values in GPU_PEAKS.items()},
                "peaks": peaks, "measured": measured}
    emit(document, options.json)
    print_table([f"{width}x{height}, N={options.sequence_length}", "TFLOP"],
                [[name, f"{value / 1e12:.4f}"] for name, value in rows.items()]
                + [[f"training step, {options.model}: {batch_size}x{samples} crops of {size}^2, fwd+bwd",
                    f"{step / 1e12:.4f}"], ["  per crop", f"{per_crop / 1e12:.5f}"]])
    print(f"float32 peak estimate {peaks['cpu']['peak_flops'] / 1e9:.0f} GFLOP/s "
          f"({peaks['cpu']['cores']} cores x {peaks['cpu']['ghz']:.2f} GHz x {peaks['cpu']['flops_per_cycle']}); "
          f"measured matmul: float32 {peaks['matmul_fp32_gflops']:.0f} GFLOP/s at {peaks['matmul_fp32_size']}^3"
          + (f", bfloat16 {peaks['matmul_bf16_gflops']:.0f} GFLOP/s at {peaks['matmul_bf16_size']}^3"
             if "matmul_bf16_gflops" in peaks else ""))
    print(f"CUDA float32: convolutions as TF32 {torch.backends.cudnn.allow_tf32} (cudnn.allow_tf32), "
          f"matrix products as TF32 {torch.backends.cuda.matmul.allow_tf32}; GPU dense peaks, TFLOP/s "
          "(sparse figures: not applicable):")
    print_table(["GPU"] + list(PRECISIONS), [[name] + [f"{v:g}" if v is not None else "-" for v in values]
                                             for name, values in GPU_PEAKS.items()])
    if measured:
        print_table(["measured", "variant", "s", "GFLOP/s", "peak GFLOP/s", "peak", "fraction of peak"],
                    [[m["bench"], m["variant"], f"{m['seconds']:.3f}", f"{m['achieved_gflops']:.1f}",
                      f"{m['peak_gflops']:.0f}" if m["peak_gflops"] else "-", m["peak_from"],
                      f"{m['fraction_of_peak']:.1%}" if m["fraction_of_peak"] else "-"] for m in measured])


if __name__ == "__main__":
    sys.exit(main())
