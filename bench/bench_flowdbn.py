"""FlowDBN forward time per output frame (PWC-Net prewarping, random weights, eval mode).

One forward pass deblurs one frame: the frozen PWC-Net estimates the N−1 flows reference →
neighbour (one batch of N−1 pairs), the neighbours are warped, and DBN runs on the 3·(2N−1)
channels. Reported: the median over the timed repeats (after one warm-up) of the whole forward,
of the prewarping part alone and of the rest (DBN), plus the process's peak resident memory on the
CPU or the peak CUDA memory on a GPU.

Usage: python bench/bench_flowdbn.py [--quick] [--device cpu|cuda] [--sequence_length 5]
       [--repeats 3] [--threads T] [--json FILE]
  default size 1280x720; --quick: 384x216 and one repeat.
"""
import json
import platform
import resource
from typing import Dict

import torch
from common import base_parser, finish_parsing, measure, median  # noqa: I100 (common puts the repository on sys.path)

from models.flowdbn import FlowDBN  # noqa: E402
from models.pwcnet import PWCNet  # noqa: E402


def build_model(sequence_length: int) -> FlowDBN:
    """FlowDBN whose prewarping PWC-Net has random weights (given as a prewarping checkpoint's state dict)."""
    pwcnet = PWCNet(div_flow=0.05)
    return FlowDBN(sequence_length=sequence_length,
                   prewarping_state_dict={"model." + key: value for key, value in pwcnet.state_dict().items()})


def run(width: int, height: int, sequence_length: int, repeats: int, device: torch.device) -> Dict[str, object]:
    torch.manual_seed(0)
    model = build_model(sequence_length).to(device).eval()
    frames = {f"input{i}": torch.rand(1, 3, height, width, device=device) for i in range(1, sequence_length + 1)}
    frame_list = [frames[f"input{i}"] for i in range(1, sequence_length + 1)]
    reference = sequence_length // 2
    impl = model.flowdbn

    def full() -> None:
        with torch.no_grad():
            model(frames)

    def prewarp() -> None:
        with torch.no_grad():
            impl.warping_network(frame_list, reference)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    total = measure(full, device, repeats, warmup=1)
    warping = measure(prewarp, device, repeats, warmup=1)
    result: Dict[str, object] = {
        "width": width, "height": height, "sequence_length": sequence_length, "repeats": repeats,
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "forward_s_per_frame": median(total), "prewarping_s": median(warping),
        "dbn_and_rest_s": median(total) - median(warping), "forward_s_all": total,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "frozen_parameters": sum(p.numel() for p in model.parameters() if not p.requires_grad),
    }
    if device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        # ru_maxrss is in KiB on Linux.
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def print_table(result: Dict[str, object]) -> None:
    memory = (f"{result['peak_cuda_mib']:.0f} MiB CUDA peak" if "peak_cuda_mib" in result
              else f"{result['peak_rss_mib']:.0f} MiB peak RSS")
    rows = [("frame size", f"{result['width']}x{result['height']}, N={result['sequence_length']}"),
            ("device", f"{result['device']} ({result['threads']} threads)"),
            ("forward per frame", f"{result['forward_s_per_frame']:.3f} s"),
            ("  PWC-Net prewarping", f"{result['prewarping_s']:.3f} s"),
            ("  DBN and the rest", f"{result['dbn_and_rest_s']:.3f} s"),
            ("memory", memory)]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=3)
    parser.add_argument("--sequence_length", type=int, default=5, choices=(5, 7), help="frames per input window")
    parser.set_defaults(device="cpu")  # 1280x720 on the CPU is what this bench was written for
    options = finish_parsing(parser)
    width, height = (384, 216) if options.quick else (1280, 720)
    result = run(width, height, options.sequence_length, options.repeats, options.device)
    text = json.dumps(result, indent=1)
    print(text)
    if options.json:
        with open(options.json, "w") as handle:
            handle.write(text + "\n")
    print_table(result)


if __name__ == "__main__":
    main()
