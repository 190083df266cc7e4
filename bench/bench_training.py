"""Seconds per training step and peak memory of FlowDBN with PWC-Net prewarping (N=5, B=2, S=2, 128x128).

One step is exactly what main.py runs per batch: runtime.EpochRunner.step on a collated batch of
B·S = 4 samples (forward with the frozen PWC-Net under inference mode, DBNLoss, backward, Adam
step; with a GradScaler for fp16). Weights are random (timing does not depend on their values;
DBN's layers get Kaiming fan-in weights so that the loss stays finite). Variants:
  fp32            the default settings
  channels_last   --channels_last
  bf16            --amp=bf16 (on the CPU only where it is fast: AVX512-BF16/AMX)
  bf16_channels_last  --amp=bf16 --channels_last=true (issue 21's fast training path)
  fp16            --amp=fp16 (CUDA only)
  compile         --compile (inductor; slow to build on the CPU, not run by default there)
Each variant runs in its own process, so that its peak resident memory (CPU) is its own; on CUDA the
peak allocated memory is reported. Protocol: `--warmup` untimed steps, then `--repeats` timed ones,
median and min–max; with `--rounds R` every variant's process runs R times, the variants taking turns
in rotating order, and the timed steps of all R are pooled. Every row reports the GFLOP/s of its step
(FLOPs counted as bench_flops.py counts them) and its fraction of the matrix-product rate of its
precision (float32 or bfloat16), measured by the parent after each variant's process (the median).
Reference (issue 5): the original's code took about 2.0 s per step on this
2-core machine; target >= 1.25x faster in fp32 at the default settings. Issue 21 (on AMX machines):
bf16 + channels-last >= 2.5x faster than fp32.

    .venv/bin/python bench/bench_training.py [--quick] [--variants fp32 bf16] [--device cuda] [--json FILE]
"""
import argparse
import os
import sys
import tempfile
from typing import Any, Dict, List

import torch
from bench_flops import training_step_flops  # noqa: I100
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
)

import runtime  # noqa: E402
from losses.dbn_loss import DBNLoss  # noqa: E402
from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402

REFERENCE_STEP_S = 2.0
VARIANTS = ("fp32", "channels_last", "bf16", "bf16_channels_last", "fp16", "compile")
AMP = {"bf16": torch.bfloat16, "bf16_channels_last": torch.bfloat16, "fp16": torch.float16}
CHANNELS_LAST = ("channels_last", "bf16_channels_last")


def build(sequence_length: int, directory: str, variant: str, device: torch.device):
    """(EpochRunner, model_and_loss) of FlowDBN-PWC with random weights, set up as main.py does for the variant."""
    torch.manual_seed(0)
    path = os.path.join(directory, "pwcnet.ckpt")
    pwcnet = PWCNet(div_flow=0.05)
    torch.save({"state_dict": {f"model.{k}": v for k, v in pwcnet.state_dict().items()}}, path)
    config = runtime.TrainerConfig(save=directory, model="FlowDBN", device_label=str(device))
    model = FlowDBN(sequence_length=sequence_length, pretrained_pwcnet=path)
    for module in model.flowdbn.dbn_net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    model_and_loss = runtime.ModelAndLoss(model, DBNLoss(), AMP.get(variant)).to(device)
    if variant in CHANNELS_LAST:
        model_and_loss.to(memory_format=torch.channels_last)
    if variant == "compile":
        model_and_loss.model.compile()
    optimizer = torch.optim.Adam([p for p in model_and_loss.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if variant == "fp16" else None
    runner = runtime.EpochRunner(config, model_and_loss, loader=None, train=True, optimizer=optimizer,
                                 grad_scaler=scaler)
    model_and_loss.train()
    return runner, model_and_loss


def batch(sequence_length: int, samples: int, size: int, device: torch.device, channels_last: bool) -> Dict[str, Any]:
    """A collated batch of B·S samples, moved to the device as runtime.Loader does."""
    generator = torch.Generator().manual_seed(1)
    example = {f"input{i}": torch.rand(samples, 3, size, size, generator=generator)
               for i in range(1, sequence_length + 1)}
    example["target1"] = torch.rand(samples, 3, size, size, generator=generator)
    return runtime.to_device(example, device, channels_last=channels_last)


def child(options: argparse.Namespace) -> Dict[str, Any]:
    """Measure one variant in this process."""
    device = options.device
    samples = options.batch_size * options.samples_per_example
    with tempfile.TemporaryDirectory() as directory:
        runner, model_and_loss = build(options.sequence_length, directory, options.variant, device)
    example = batch(options.sequence_length, samples, options.size, device, options.variant in CHANNELS_LAST)
    losses: List[float] = []

    def step() -> None:
        loss_dict, _ = runner.step(example)
        losses.append(float(loss_dict["total_loss"].detach()))

    reset_peak_memory(device)
    times = measure(step, device, options.repeats, options.warmup)
    return {"variant": options.variant, "step_s": stats(times), "samples_per_step": samples,
            "samples_per_s": samples / stats(times)["median"], "final_loss": losses[-1],
            **peak_memory_mib(device)}


def pooled(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One row from a variant's processes of all rounds: their timed steps pooled, the largest peak memory."""
    row = dict(results[-1])
    times = [seconds for result in results for seconds in result["step_s"]["all"]]
    row["step_s"] = stats(times)
    row["samples_per_s"] = row["samples_per_step"] / row["step_s"]["median"]
    for key in ("peak_rss_mib", "peak_cuda_mib"):
        if key in row:
            row[key] = max(result[key] for result in results)
    return row


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=5)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="default: fp32 channels_last bf16 bf16_channels_last, on CUDA also fp16")
    parser.add_argument("--sequence_length", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=2, help="B, examples per step")
    parser.add_argument("--samples_per_example", type=int, default=2, help="S, crops per example")
    parser.add_argument("--size", type=int, default=None, help="crop size (default 128, quick 64)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant's process this many times, in rotating order, pooling their steps")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)  # child process
    options = finish_parsing(parser)
    options.size = options.size or (64 if options.quick else 128)
    if options.variant is not None:
        emit(child(options), None)
        return
    cuda = options.device.type == "cuda"
    variants = options.variants or (["fp32", "channels_last", "bf16", "bf16_channels_last"] + ["fp16"] * cuda)
    if options.quick and options.variants is None:
        variants = ["fp32", "bf16_channels_last"]
    forwarded = ["--device", str(options.device), "--repeats", str(options.repeats), "--warmup", str(options.warmup),
                 "--sequence_length", str(options.sequence_length), "--batch_size", str(options.batch_size),
                 "--samples_per_example", str(options.samples_per_example), "--size", str(options.size)]
    if options.threads:
        forwarded += ["--threads", str(options.threads)]
    results: Dict[str, List[Dict[str, Any]]] = {variant: [] for variant in variants}
    matmul: Dict[str, List[float]] = {"fp32": [], "bf16": []}
    for round_index in range(options.rounds):
        order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
        for variant in order:  # the matmul rates alternate with the variants (load changes both alike)
            results[variant].append(run_child("bench_training.py", forwarded + ["--variant", variant]))
            for key, value in matmul_rates(options.device, 256 if options.quick else 2048).items():
                matmul[key].append(value)
    rows = [pooled(results[variant]) for variant in variants]
    matmul_gflops = {key: stats(values) for key, values in matmul.items()}
    flops = training_step_flops("FlowDBN", options.batch_size * options.samples_per_example, options.size,
                                options.sequence_length)
    fp32 = next((row for row in rows if row["variant"] == "fp32"), None)
    for row in rows:
        row["speedup_vs_fp32"] = fp32["step_s"]["median"] / row["step_s"]["median"] if fp32 else None
        row["speedup_vs_reference"] = REFERENCE_STEP_S / row["step_s"]["median"]
        row["tflop"], row["gflops"] = flops / 1e12, flops / row["step_s"]["median"] / 1e9
        # fp16 has no matmul rate of its own here: it is not a CPU precision and, on tensor cores, runs as bf16 does.
        row["matmul_precision"] = "fp32" if AMP.get(row["variant"]) is None else "bf16"
        row["fraction_of_matmul"] = row["gflops"] / matmul_gflops[row["matmul_precision"]]["median"]
    document = {"bench": "training", "machine": machine(options.device),
                "config": {"model": "FlowDBN (PWC-Net)", "sequence_length": options.sequence_length,
                           "batch_size": options.batch_size, "samples_per_example": options.samples_per_example,
                           "crop": options.size, "repeats": options.repeats, "warmup": options.warmup,
                           "rounds": options.rounds},
                "reference_step_s": REFERENCE_STEP_S, "matmul_gflops": matmul_gflops, "rows": rows}
    emit(document, options.json)
    memory_key = "peak_cuda_mib" if cuda else "peak_rss_mib"
    print_table(["variant", "s/step median (min-max)", "samples/s", "vs fp32", "vs 2.0 s reference", "GFLOP/s",
                 "of matmul rate", memory_key.replace("_", " ")],
                [[row["variant"], format_range(row["step_s"]), f"{row['samples_per_s']:.2f}",
                  f"{row['speedup_vs_fp32']:.2f}x" if row["speedup_vs_fp32"] else "-",
                  f"{row['speedup_vs_reference']:.2f}x", f"{row['gflops']:.1f}",
                  f"{row['fraction_of_matmul']:.0%} of {row['matmul_precision']}", f"{row[memory_key]:.0f}"]
                 for row in rows])
    print("matmul GFLOP/s between the variants: " + ", ".join(
        f"{key} {format_range(value, digits=1)}" for key, value in matmul_gflops.items()))


if __name__ == "__main__":
    sys.exit(main())
