"""The measurement protocol shared by the bench/ scripts: warm-up, repeats, median and min–max, JSON + table.

Every script times a callable `warmup` times without recording, then `repeats` times, and reports
the median with the min–max range; CUDA work is synchronised before each clock read. Each result
carries the machine, the load average, the torch version and the git commit, so a number in
bench/README.md can always be traced to where it came from. `--quick` selects tiny sizes and one
repeat (what the test suite runs); `--json FILE` also writes the JSON document to FILE.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from contrib.precision import native_bf16  # noqa: E402
from utils.allocator import ENVIRONMENT_VARIABLE, keep_freed_memory  # noqa: E402


def base_parser(description: str, default_repeats: int, default_warmup: int = 1) -> argparse.ArgumentParser:
    """The flags every bench script shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (used by the tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed repeats (default {default_repeats}, quick 1)")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"untimed warm-up runs before the repeats (default {default_warmup}, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the JSON document to this file")
    parser.set_defaults(default_repeats=default_repeats, default_warmup=default_warmup)
    return parser


def finish_parsing(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse, fill repeat/warm-up defaults, apply --threads and check the device."""
    options = parser.parse_args(argv)
    if options.repeats is None:
        options.repeats = 1 if options.quick else options.default_repeats
    if options.warmup is None:
        options.warmup = 1 if options.quick else options.default_warmup
    if options.repeats < 1 or options.warmup < 0:
        parser.error(f"--repeats must be >= 1 and --warmup >= 0, got {options.repeats} and {options.warmup}")
    if options.threads:
        torch.set_num_threads(options.threads)
    # As main.py and deblur.py run (utils/allocator.py); DEBLUR_DEVIL_KEEP_FREED_MEMORY=0 measures without.
    options.malloc = keep_freed_memory()
    options.device = torch.device(options.device)
    if options.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    return options


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> List[float]:
    """Wall seconds of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def stats(values: Sequence[float]) -> Dict[str, Any]:
    """{'median', 'min', 'max', 'n', 'all'} of a list of measurements."""
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values),
            "all": list(values)}


def git_commit() -> str:
    """Short hash of HEAD, '+dirty' when tracked files under bench/, models/, datasets/, contrib/ or tools/ changed."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "bench", "models",
                                "datasets", "contrib", "tools", "runtime.py", "deblur.py"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa() -> str:
    """The CPU's native bfloat16 unit as bench/README.md records it: "AMX", "AVX512-BF16" or "none".

    Without one, bfloat16 autocast on the CPU converts every product to float32 and runs slower than float32.
    """
    return native_bf16(torch.device("cpu")) or "none"


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int,
                 budget_s: float) -> Tuple[float, int]:
    """Measured FLOP/s of a size^3 matrix product and the size used: what the BLAS reaches on this device (the
    fastest of `repeats`, since other processes can only slow it down).

    A 256^3 product is timed first; where the dtype is emulated (bfloat16 on a CPU without bf16
    instructions runs at ~1 GFLOP/s) the size is halved until the repeats fit in about `budget_s`.
    """
    def rate(n: int, times: int) -> float:
        a = torch.rand(n, n, device=device, dtype=dtype)
        b = torch.rand(n, n, device=device, dtype=dtype)
        return 2.0 * n ** 3 / min(measure(lambda: a @ b, device, times, 1))

    probe = rate(min(size, 256), 1)
    while size > 256 and 2.0 * size ** 3 * (repeats + 1) / probe > budget_s:
        size //= 2
    return rate(size, repeats), size


def matmul_rates(device: torch.device, size: int, repeats: int = 10, budget_s: float = 5.0) -> Dict[str, float]:
    """{'fp32': GFLOP/s, 'bf16': GFLOP/s} of a size^3 matrix product now (bf16 sized down where it is emulated).

    The yardstick of every bf16 (float32) row's "fraction of the matmul rate": what the BLAS reaches in
    this precision on this device, measured in the same process as the row, since load changes it. The
    fastest of 10 repeats: on a shared CPU a 2-thread product that loses a core waits for it at every
    barrier, so a single try can read 100x low.
    """
    return {name: matmul_flops(device, dtype, size, repeats, budget_s)[0] / 1e9
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}


def machine(device: torch.device) -> Dict[str, Any]:
    """Where and when a measurement was taken."""
    info: Dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(), "cpu": cpu_name(), "isa": isa(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "commit": git_commit(), "device": str(device),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "malloc": "unchanged" if os.environ.get(ENVIRONMENT_VARIABLE, "1").strip() == "0" else "keeps freed memory",
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB.

    Linux's VmHWM belongs to the process image and starts afresh at exec; ru_maxrss (the fallback)
    would carry over the parent's peak into a child started by fork + exec.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak-memory window (the CPU peak cannot be reset: use one process per variant)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> Dict[str, float]:
    """{'peak_cuda_mib': ...} on CUDA, else {'peak_rss_mib': ...} of the whole process."""
    if device.type == "cuda":
        return {"peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20}
    return {"peak_rss_mib": peak_rss_mib()}


def run_child(script: str, arguments: Sequence[str]) -> Dict[str, Any]:
    """Run `python script arguments --child` and return the JSON it prints last (one variant per process,
    so that each variant's peak resident memory is its own)."""
    command = [sys.executable, os.path.join(REPO, "bench", script), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(command)} printed no JSON result:\n{completed.stdout[-3000:]}")
    return json.loads(lines[-1])


def format_range(values: Dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    """'median (min–max)' of a stats dict, scaled."""
    return (f"{values['median'] * scale:.{digits}f} ({values['min'] * scale:.{digits}f}–"
            f"{values['max'] * scale:.{digits}f})")


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def emit(document: Dict[str, Any], json_path: Optional[str]) -> None:
    """Print the JSON document (one line, so that callers can find it) and optionally write it to a file."""
    text = json.dumps(document)
    print(text)
    if json_path:
        with open(json_path, "w") as handle:
            handle.write(json.dumps(document, indent=1) + "\n")
