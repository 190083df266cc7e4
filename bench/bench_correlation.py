"""Time and memory of the pure-PyTorch correlation at the PWC-Net pyramid sizes of FlowDBN.

The default configurations are the five PWC-Net levels for 1280x720 frames with batch 4 (the
N−1 = 4 neighbours of one 5-frame sequence): C=196 at 12x20 up to C=32 at 180x320. On CUDA the
peak memory is measured with torch.cuda.max_memory_allocated; on the CPU the temporaries are
reported analytically (the output, the padded second input and one (B, C, H, W) product), next
to what a naive (B, 81, C, H, W) implementation would hold. A column for the compiled
spatial_correlation_sampler appears only when that package is importable.

Usage: python bench/bench_correlation.py [--quick] [--device cpu|cuda] [--repeats N] [--json FILE]
"""
import json
from typing import Callable, Dict, List, Optional

import torch
from common import base_parser, finish_parsing, measure, median, synchronize  # noqa: I100 (puts the repository on sys.path)

from contrib.correlation import correlation, sampler_available  # noqa: E402

MAX_DISPLACEMENT = 4
DISPLACEMENTS = (2 * MAX_DISPLACEMENT + 1) ** 2

# (batch, channels, height, width): PWC-Net levels 1/64 … 1/4 of a 1280x720 frame, 4 neighbours.
FULL_CONFIGS = [(4, 196, 12, 20), (4, 128, 23, 40), (4, 96, 45, 80), (4, 64, 90, 160), (4, 32, 180, 320)]
QUICK_CONFIGS = [(4, 196, 12, 20), (4, 96, 45, 80), (1, 32, 180, 320)]


def mib(num_bytes: float) -> float:
    return num_bytes / 2 ** 20


def analytic_temporaries(batch: int, channels: int, height: int, width: int, element_size: int) -> Dict[str, float]:
    """MiB held by the loop implementation's forward, and by a naive all-displacements product."""
    r = MAX_DISPLACEMENT
    output = batch * DISPLACEMENTS * height * width
    padded = batch * channels * (height + 2 * r) * (width + 2 * r)
    product = batch * channels * height * width
    return {"analytic_forward_mib": mib((output + padded + product) * element_size),
            "naive_product_mib": mib(DISPLACEMENTS * product * element_size)}


def time_call(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time in milliseconds after one warm-up call."""
    return median(measure(fn, device, repeats, warmup=1)) * 1000.0


def peak_cuda_mib(fn: Callable[[], None], device: torch.device) -> Optional[float]:
    """Peak CUDA memory above the inputs while running fn, or None on the CPU."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return mib(torch.cuda.max_memory_allocated(device) - baseline)


def bench_backend(backend: str, f1: torch.Tensor, f2: torch.Tensor, device: torch.device,
                  repeats: int) -> Dict[str, Optional[float]]:
    def forward() -> None:
        with torch.no_grad():
            correlation(f1, f2, MAX_DISPLACEMENT, backend=backend)

    a = f1.detach().requires_grad_()
    b = f2.detach().requires_grad_()
    grad = torch.randn(f1.size(0), DISPLACEMENTS, f1.size(2), f1.size(3), device=device, dtype=f1.dtype)

    def forward_backward() -> None:
        correlation(a, b, MAX_DISPLACEMENT, backend=backend).backward(grad)
        a.grad, b.grad = None, None

    return {"forward_ms": time_call(forward, device, repeats),
            "forward_backward_ms": time_call(forward_backward, device, repeats),
            "forward_peak_mib": peak_cuda_mib(forward, device),
            "forward_backward_peak_mib": peak_cuda_mib(forward_backward, device)}


def run(configs: List[tuple], device: torch.device, repeats: int) -> List[Dict[str, object]]:
    backends = ["torch"] + (["spatial_correlation_sampler"] if sampler_available() else [])
    rows = []
    for batch, channels, height, width in configs:
        f1 = torch.randn(batch, channels, height, width, device=device)
        f2 = torch.randn(batch, channels, height, width, device=device)
        row: Dict[str, object] = {"batch": batch, "channels": channels, "height": height, "width": width,
                                  "device": str(device)}
        row.update(analytic_temporaries(batch, channels, height, width, f1.element_size()))
        for backend in backends:
            for key, value in bench_backend(backend, f1, f2, device, repeats).items():
                row[f"{backend}_{key}"] = value
        rows.append(row)
    return rows


def print_table(rows: List[Dict[str, object]]) -> None:
    backends = ["torch"] + (["spatial_correlation_sampler"] if "spatial_correlation_sampler_forward_ms" in rows[0]
                            else [])
    header = ["B", "C", "H", "W", "analytic MiB", "naive MiB"]
    for backend in backends:
        short = "torch" if backend == "torch" else "sampler"
        header += [f"{short} fwd ms", f"{short} fwd+bwd ms", f"{short} peak MiB"]
    lines = [header]
    for row in rows:
        line = [str(row["batch"]), str(row["channels"]), str(row["height"]), str(row["width"]),
                f"{row['analytic_forward_mib']:.1f}", f"{row['naive_product_mib']:.1f}"]
        for backend in backends:
            peak = row[f"{backend}_forward_backward_peak_mib"]
            line += [f"{row[f'{backend}_forward_ms']:.2f}", f"{row[f'{backend}_forward_backward_ms']:.2f}",
                     "n/a (cpu)" if peak is None else f"{peak:.1f}"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))


def main() -> None:
    options = finish_parsing(base_parser(__doc__.splitlines()[0], default_repeats=5))
    rows = run(QUICK_CONFIGS if options.quick else FULL_CONFIGS, options.device, options.repeats)
    text = json.dumps(rows, indent=1)
    print(text)
    if options.json:
        with open(options.json, "w") as handle:
            handle.write(text + "\n")
    print_table(rows)


if __name__ == "__main__":
    main()
