"""FLOPs per 1280x720 frame of DBN, PWC-Net and FlowDBN (torch.utils.flop_counter) and the achieved fraction
of the device's peak throughput.

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode on a forward pass over meta tensors
(nothing is computed, so this takes seconds). The counter counts convolutions and matrix products
(2 FLOPs per multiply-add); elementwise work (BatchNorm, activations, the correlation's 81 dot
products, warping) is not counted, as in the issue's reference figures (2.47 TFLOP per frame: 1.31
in PWC-Net for the 4 pairs, 1.16 in DBN). Rows:
  DBN (N=5)                 DBN on 5 frames (15 input channels)
  PWC-Net, original          4 pairs, both images of every pair through the pyramid (8 pyramids)
  PWC-Net, per frame         FlowDBN's forward: each of the 5 frames' pyramids once
  PWC-Net, streaming         a sliding window over a video: 1 new pyramid per output frame
  FlowDBN DBN part           DBN on 5 frames + 4 warped ones (27 channels)
  FlowDBN (per frame / streaming)   the sums
  training step             FlowDBN forward + backward at B·S=4, 128x128 (bench_training's step)
With --training_json / --inference_json (outputs of bench_training.py / bench_inference.py), the
measured times are turned into achieved FLOP/s and a fraction of the peak: on CUDA the GPU's dense
peak from a small table of data-sheet values; on the CPU the larger of the measured matrix-product
rate (below; bfloat16's for bf16) and an estimate cores x clock x FLOPs/cycle
(--cpu_flops_per_cycle, default 32 = two 256-bit FMA pipes, as on AMD Zen 4, whose AVX-512 is
double-pumped; the clock is the highest 'cpu MHz' in /proc/cpuinfo unless --cpu_ghz is given).
The FLOP/s of a large float32 (and bfloat16) matrix product are measured too, as what the BLAS
actually reaches on the machine at that moment (other processes included).

    .venv/bin/python bench/bench_flops.py [--quick] [--training_json T.json] [--inference_json I.json]
"""
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
from common import base_parser, emit, finish_parsing, machine, print_table  # noqa: I100
from torch.utils.flop_counter import FlopCounterMode

import runtime  # noqa: E402
from losses.dbn_loss import DBNLoss  # noqa: E402
from models.dbn import DBN  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_TFLOP = {"FlowDBN": 2.47, "PWC-Net": 1.31, "DBN": 1.16}
# Dense data-sheet peaks in TFLOP/s: (float32 without tensor cores, bf16/fp16 with tensor cores).
GPU_PEAKS = {"H200": (67.0, 989.0), "H100 SXM": (67.0, 989.0), "H100 PCIe": (51.0, 756.0), "H100": (67.0, 989.0),
             "A100": (19.5, 312.0), "L40S": (91.6, 362.0), "L4": (30.3, 121.0), "A10": (31.2, 125.0),
             "RTX 4090": (82.6, 165.0), "V100": (15.7, 125.0), "T4": (8.1, 65.0)}


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


def training_step_flops(size: int, samples: int, sequence_length: int) -> float:
    """FLOPs of one FlowDBN training step (forward + backward) as bench_training.py runs it."""
    model_and_loss = runtime.ModelAndLoss(flowdbn(sequence_length), DBNLoss()).train()
    example = {f"input{i}": torch.rand(samples, 3, size, size) for i in range(1, sequence_length + 1)}
    example["target1"] = torch.rand(samples, 3, size, size)

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


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int,
                 budget_s: float) -> Tuple[float, int]:
    """Measured FLOP/s of a size^3 matrix product and the size used: what the BLAS reaches on this device (the
    fastest of `repeats`, since other processes can only slow it down).

    A 256^3 product is timed first; where the dtype is emulated (bfloat16 on a CPU without bf16
    instructions runs at ~1 GFLOP/s) the size is halved until the repeats fit in about `budget_s`.
    """
    from common import measure

    def rate(n: int, times: int) -> float:
        a = torch.rand(n, n, device=device, dtype=dtype)
        b = torch.rand(n, n, device=device, dtype=dtype)
        return 2.0 * n ** 3 / min(measure(lambda: a @ b, device, times, 1))

    probe = rate(min(size, 256), 1)
    while size > 256 and 2.0 * size ** 3 * (repeats + 1) / probe > budget_s:
        size //= 2
    return rate(size, repeats), size


def gpu_peak_flops(name: str, reduced_precision: bool) -> Optional[float]:
    for key, (fp32, half) in GPU_PEAKS.items():
        if key.lower() in name.lower():
            return (half if reduced_precision else fp32) * 1e12
    return None


def achieved(document: Dict[str, Any], flops: float, seconds: float, variant: str,
             peaks: Dict[str, Any]) -> Dict[str, Any]:
    """Achieved FLOP/s of one measured variant and its fraction of the matching peak."""
    device = document["machine"]["device"]
    rate = flops / seconds
    entry = {"variant": variant, "seconds": seconds, "tflop": flops / 1e12, "achieved_gflops": rate / 1e9}
    if device.startswith("cuda"):
        peak = gpu_peak_flops(document["machine"].get("gpu", ""), variant in ("bf16", "fp16"))
        entry["peak_gflops"] = peak / 1e9 if peak else None
    else:
        # The clock in /proc/cpuinfo is the base clock; what a large matrix product reaches bounds the peak too.
        if variant in ("bf16", "fp16"):
            peak = peaks.get("matmul_bf16_gflops", 0.0) * 1e9 if variant == "bf16" else None
        else:
            peak = max(peaks["cpu"]["peak_flops"], peaks["matmul_fp32_gflops"] * 1e9)
        entry["peak_gflops"] = peak / 1e9 if peak else None
    entry["fraction_of_peak"] = rate / peak if peak else None
    return entry


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=1, default_warmup=0)
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--training_json", default=None, help="bench_training.py --json output")
    parser.add_argument("--inference_json", default=None, help="bench_inference.py --json output")
    parser.add_argument("--cpu_flops_per_cycle", type=int, default=32, help="float32 FLOPs per cycle and core")
    parser.add_argument("--cpu_ghz", type=float, default=None, help="clock for the CPU peak estimate")
    options = finish_parsing(parser)
    width, height = (256, 128) if options.quick else (1280, 720)
    rows = frame_flops(width, height, options.sequence_length)
    step = training_step_flops(32 if options.quick else 128, 4, options.sequence_length)
    peaks: Dict[str, Any] = {"cpu": cpu_peak_flops(options.cpu_flops_per_cycle, options.cpu_ghz)}
    size, budget_s = (1024, 0.3) if options.quick else (4096, 20.0)
    dtypes = {"fp32": torch.float32}
    if options.device.type == "cuda" or torch.backends.mkldnn.is_available():
        dtypes["bf16"] = torch.bfloat16
    for name, dtype in dtypes.items():
        flops, used = matmul_flops(options.device, dtype, size, max(options.repeats, 5), budget_s)
        peaks[f"matmul_{name}_gflops"], peaks[f"matmul_{name}_size"] = flops / 1e9, used
    measured: List[Dict[str, Any]] = []
    if options.training_json:
        with open(options.training_json) as handle:
            training = json.load(handle)
        for row in training["rows"]:
            measured.append({"bench": "training step", **achieved(training, step, row["step_s"]["median"],
                                                                   row["variant"], peaks)})
    if options.inference_json:
        with open(options.inference_json) as handle:
            inference = json.load(handle)
        frame_size = (inference["config"]["width"], inference["config"]["height"])
        per_frame = rows if frame_size == (width, height) else frame_flops(*frame_size, options.sequence_length)
        for row in inference["rows"]:
            flops = per_frame["FlowDBN, per frame"] if row["variant"] == "naive" else per_frame["FlowDBN, streaming"]
            measured.append({"bench": "inference frame", **achieved(inference, flops, row["frame_s"]["median"],
                                                                     row["variant"], peaks)})
    document = {"bench": "flops", "machine": machine(options.device),
                "config": {"width": width, "height": height, "sequence_length": options.sequence_length},
                "tflop_per_frame": {k: v / 1e12 for k, v in rows.items()},
                "training_step_tflop": step / 1e12, "reference_tflop": REFERENCE_TFLOP, "peaks": peaks,
                "measured": measured}
    emit(document, options.json)
    print_table([f"{width}x{height}, N={options.sequence_length}", "TFLOP"],
                [[name, f"{value / 1e12:.4f}"] for name, value in rows.items()]
                + [["training step (B*S=4, 128x128, fwd+bwd)" if not options.quick else "training step (quick)",
                    f"{step / 1e12:.4f}"]])
    print(f"float32 peak estimate {peaks['cpu']['peak_flops'] / 1e9:.0f} GFLOP/s "
          f"({peaks['cpu']['cores']} cores x {peaks['cpu']['ghz']:.2f} GHz x {peaks['cpu']['flops_per_cycle']}); "
          f"measured matmul: float32 {peaks['matmul_fp32_gflops']:.0f} GFLOP/s at {peaks['matmul_fp32_size']}^3"
          + (f", bfloat16 {peaks['matmul_bf16_gflops']:.0f} GFLOP/s at {peaks['matmul_bf16_size']}^3"
             if "matmul_bf16_gflops" in peaks else ""))
    if measured:
        print_table(["measured", "variant", "s", "GFLOP/s", "peak GFLOP/s", "fraction of peak"],
                    [[m["bench"], m["variant"], f"{m['seconds']:.3f}", f"{m['achieved_gflops']:.1f}",
                      f"{m['peak_gflops']:.0f}" if m["peak_gflops"] else "-",
                      f"{m['fraction_of_peak']:.1%}" if m["fraction_of_peak"] else "-"] for m in measured])


if __name__ == "__main__":
    sys.exit(main())
