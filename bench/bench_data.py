"""Training-data throughput of GoProNahTrain (N=5, 128x128 crops, S=8 samples per example) on generated
1280x720 sequences: the original's approach against this project's loader, with and without the frame cache.

Pipelines (every one with the same augmentation: crops, flips, rotations, reversal):
  original  every frame of every example decoded from PNG on every load, through matplotlib's imread
            (float32, then x255 truncated to uint8), float32 samples out of the workers, and workers
            started afresh every epoch (a plain DataLoader), as the original ran without its cache
  decode    this project without a cache, through main.py's loader (`runtime.make_data_loader`): each
            distinct frame of an example decoded once (libspng), uint8 samples out of persistent
            workers, converted to float by `runtime.Loader` (on the device; here the CPU)
  cache     the same with --training_dataset_cache_dir: one uint8 .npy per frame, memory-mapped, crops
            read only their window; "cold" = first epoch with an empty cache folder, "warm" = later
Each pipeline runs for 0, 1 and 2 DataLoader workers (batch size 2, shuffled), and every batch goes
through `runtime.Loader` (collated over samples, images on the device as float32), as in training.
One epoch = every example once; the time includes starting the workers wherever a pipeline starts
them (the original every epoch; this project's persistent workers in the first epoch only). Protocol:
`--warmup` untimed epochs (the cache's cold epoch is timed separately instead, on a fresh loader),
then `--repeats` timed epochs; the median with min–max is reported, as examples/s and crops/s
(= examples/s x S). The rate after the first batch ("steady") is reported as well: in a real epoch
(2103 examples in GOPRO_Large's training split) starting the workers hardly counts.
The OS page cache is not dropped (that would need root and disturb other processes): "cold" means
a cold frame cache, not a cold disk. Cache sizes are compared with the original's, which stored one
float32 array of the N+1 frames per example.

One worker: what a single loader worker supplies, measured in-process with one torch thread (as
DataLoader workers run): every example of an epoch fetched by its loader key and collated per batch,
without the transfer to the main process, for the "decode" and "cache" (cold and warm) pipelines.
Divided into what one GPU consumes (GPU_CROPS_PER_S: an H100-class GPU trains FlowDBN at the paper's
settings on an estimated 1,200-2,600 crops of 128^2 per second), it gives the workers one GPU needs.
The dataset is built with the launch scripts' settings (scripts/deblurring/gopro_nah/
train_flowdbn_128_5_on_nah.sh: GoProNahTrain's flips, rotations and reversal, no rescaling).

    .venv/bin/python bench/bench_data.py [--quick] [--workers 0 1 2] [--data_dir DIR] [--json FILE]
    .venv/bin/python bench/bench_data.py --workers --data_dir DIR     # only what one worker supplies
"""
import itertools
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from common import (  # noqa: I100
    base_parser,
    emit,
    finish_parsing,
    format_range,
    machine,
    measure,
    print_table,
    stats,
)
from torch.utils.data import DataLoader, default_collate

import runtime  # noqa: E402
from datasets.gopro_common import FrameStack  # noqa: E402
from datasets.gopro_nah import GoProNahTrain  # noqa: E402
from datasets.sampling import LoaderKey  # noqa: E402
from tools.synthetic_gopro import make_gopro_nah  # noqa: E402

PIPELINES = ("original", "decode", "cache")
# Crops of 128^2 per second one H100-class GPU trains FlowDBN on at the paper's settings (issue 19's estimate).
GPU_CROPS_PER_S = (1200.0, 2600.0)
# The augmentation of the launch scripts, which leave GoProNahTrain's defaults as they are; spelled out so
# that the bench keeps measuring these even if the defaults change.
LAUNCH_AUGMENTATION = {"random_flips": True, "random_rotate": True, "random_reverse": True, "random_scales": "none"}


class OriginalApproach(GoProNahTrain):
    """GoProNahTrain reading like the original without its cache: all N+1 files, every load, via float32."""

    def _read_frames(self, files: Sequence[str]) -> FrameStack:
        import matplotlib.image

        # matplotlib returns float32 in [0, 1] for PNGs; the original truncated x255 back to uint8 (spec §5.3).
        return FrameStack([(matplotlib.image.imread(path)[..., :3] * 255.0).astype(np.uint8) for path in files])


def generate(directory: str, width: int, height: int, frames: int, sequences: int) -> Path:
    """GOPRO_Large training sequences of the synthetic generator (reused when already there)."""
    root = Path(directory) / "GOPRO_Large"
    marker = root / f".complete_{width}x{height}_{frames}x{sequences}"
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        make_gopro_nah(directory, width=width, height=height, num_frames=frames, train_sequences=sequences,
                       test_sequences=0, seed=0, sub_frames=3)
        marker.touch()
    return root


def dataset(pipeline: str, root: Path, crop: int, samples: int, cache_dir: str = None):
    """The training dataset of one pipeline."""
    cls = OriginalApproach if pipeline == "original" else GoProNahTrain
    return cls(None, root=str(root), random_crop=[crop, crop], num_samples_per_example=samples, sequence_length=5,
               cache_dir=cache_dir if pipeline == "cache" else None, **LAUNCH_AUGMENTATION)


def make_loader(pipeline: str, data, workers: int, batch_size: int) -> runtime.Loader:
    """The original's plain DataLoader, or main.py's; both wrapped in the training loop's `runtime.Loader`."""
    cpu = torch.device("cpu")
    if pipeline == "original":
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=False, num_workers=workers)
    else:
        loader = runtime.make_data_loader(data, batch_size=batch_size, shuffle=True, drop_last=False,
                                          num_workers=workers, device=cpu)
    return runtime.Loader(loader, cpu, collate=True)


def epoch(loader: runtime.Loader, first_batch: List[float]) -> None:
    """Load every example once, as a training epoch does; appends the time to the first batch."""
    start = time.perf_counter()
    for index, _ in enumerate(loader):
        if index == 0:
            first_batch.append(time.perf_counter() - start)


def timed_epochs(loader: runtime.Loader, repeats: int, warmup: int) -> Dict[str, Any]:
    """Epoch times, and the steady rate after the first batch."""
    first: List[float] = []
    totals = measure(lambda: epoch(loader, first), torch.device("cpu"), repeats, warmup)
    first = first[warmup:]
    examples, batch_size = len(loader.dataset), loader.loader.batch_size
    steady = [(examples - batch_size) / (total - start) for total, start in zip(totals, first)]
    return {"epoch_s": stats(totals), "first_batch_s": stats(first), "steady_examples_per_s": stats(steady)}


def worker_epoch(data, batch_size: int, seed: int) -> Tuple[float, float]:
    """What one loader worker does in an epoch (every example fetched by its loader key, collated per batch):
    wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    for start in range(0, len(order), batch_size):
        default_collate([data[LoaderKey(index, seed)] for index in order[start:start + batch_size]])
    return time.perf_counter() - wall, time.process_time() - cpu


def distinct_frames(data) -> int:
    """Frames an epoch reads: each example's distinct input and target files (windows clamp at the ends)."""
    total = 0
    for index in range(len(data)):
        inputs, target, _ = data.example_files(index)
        total += len(set(inputs) | ({target} if target else set()))
    return total


def one_worker(options, root: Path, scratch: str) -> Dict[str, Any]:
    """crops/s of one worker (one thread, in-process) without and with the frame cache (cold, then warm).

    The cache's cold epoch comes first; then decode and warm-cache epochs alternate, so that other processes
    slow both alike. CPU seconds are what a worker on a core of its own would take; wall seconds are
    reported too (on a busy machine they include waiting for a core).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers run with one torch thread
    try:
        cache_dir = os.path.join(scratch, "cache_one_worker")
        shutil.rmtree(cache_dir, ignore_errors=True)
        data = {"decode": dataset("decode", root, options.crop, options.samples),
                "cache": dataset("cache", root, options.crop, options.samples, cache_dir)}
        seeds = itertools.count()  # a new epoch seed every time, as SeededSampler draws: new crops and flips
        times: Dict[str, List[Tuple[float, float]]] = {"cache_cold": [worker_epoch(data["cache"], options.batch_size,
                                                                                   next(seeds))],
                                                        "decode": [], "cache_warm": []}
        for repeat in range(options.warmup + options.repeats):
            for name, pipeline in (("decode", "decode"), ("cache_warm", "cache")):
                measured = worker_epoch(data[pipeline], options.batch_size, next(seeds))
                if repeat >= options.warmup:
                    times[name].append(measured)
        examples, frames = len(data["decode"]), distinct_frames(data["decode"])
    finally:
        torch.set_num_threads(threads)
    summary: Dict[str, Any] = {"examples": examples, "frames_read_per_epoch": frames,
                               "gpu_crops_per_s": list(GPU_CROPS_PER_S)}
    for name, pairs in times.items():
        summary[f"{name}_epoch_s"] = stats([wall for wall, _ in pairs])
        summary[f"{name}_epoch_cpu_s"] = stats([cpu for _, cpu in pairs])
        seconds = summary[f"{name}_epoch_cpu_s"]["median"]
        summary[f"{name}_crops_per_s"] = examples * options.samples / seconds
        summary[f"{name}_frames_per_s"] = frames / seconds
        summary[f"{name}_wall_crops_per_s"] = examples * options.samples / summary[f"{name}_epoch_s"]["median"]
        # Workers (a core each) one GPU needs at the low and high end of its estimated consumption.
        summary[f"{name}_workers_per_gpu"] = [math.ceil(crops / summary[f"{name}_crops_per_s"])
                                              for crops in GPU_CROPS_PER_S]
    return summary


def run(options, root: Path, scratch: str) -> List[Dict[str, Any]]:
    rows = []
    for workers in options.workers:
        for pipeline in PIPELINES:
            cache_dir = os.path.join(scratch, f"cache_w{workers}")
            shutil.rmtree(cache_dir, ignore_errors=True)
            data = dataset(pipeline, root, options.crop, options.samples, cache_dir)
            row: Dict[str, Any] = {"pipeline": pipeline, "workers": workers, "examples": len(data),
                                   "samples_per_example": options.samples}
            torch.manual_seed(0)
            loader = make_loader(pipeline, data, workers, options.batch_size)
            if pipeline == "cache":
                # The first epoch fills the cache; it is the cold measurement, the later ones are warm.
                row["cold"] = timed_epochs(loader, 1, 0)
                row["warm"] = timed_epochs(loader, options.repeats, options.warmup)
                row["cache_bytes"] = data.cache.size_bytes()
            else:
                row["every"] = timed_epochs(loader, options.repeats, options.warmup)
            del loader  # stops persistent workers before the next pipeline starts its own
            rows.append(row)
    return rows


def summarise(rows: List[Dict[str, Any]], frame_bytes: int, sequence_length: int) -> List[Dict[str, Any]]:
    """Per worker count: throughput of every pipeline and the speed-ups over the original approach."""
    summary = []
    for workers in sorted({row["workers"] for row in rows}):
        by = {row["pipeline"]: row for row in rows if row["workers"] == workers}
        examples = by["original"]["examples"]
        samples = by["original"]["samples_per_example"]
        measured = {"original": by["original"]["every"], "decode": by["decode"]["every"],
                    "cache_cold": by["cache"]["cold"], "cache_warm": by["cache"]["warm"]}
        entry: Dict[str, Any] = {"workers": workers}
        for name, values in measured.items():
            entry[f"{name}_examples_per_s"] = examples / values["epoch_s"]["median"]
            entry[f"{name}_crops_per_s"] = entry[f"{name}_examples_per_s"] * samples
            entry[f"{name}_steady_crops_per_s"] = values["steady_examples_per_s"]["median"] * samples
        for name in ("decode", "cache_cold", "cache_warm"):
            entry[f"speedup_{name}"] = entry[f"{name}_examples_per_s"] / entry["original_examples_per_s"]
            entry[f"steady_speedup_{name}"] = (entry[f"{name}_steady_crops_per_s"]
                                               / entry["original_steady_crops_per_s"])
        entry["cache_bytes"] = by["cache"]["cache_bytes"]
        entry["original_cache_bytes"] = examples * (sequence_length + 1) * frame_bytes * 4  # float32 per example
        entry["cache_size_ratio"] = entry["cache_bytes"] / entry["original_cache_bytes"]
        summary.append(entry)
    return summary


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], default_repeats=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2],
                        help="DataLoader worker counts (none: only the one-worker measurement)")
    parser.add_argument("--data_dir", default=None,
                        help="where to generate (or find) the sequences (default: a temporary folder)")
    parser.add_argument("--batch_size", type=int, default=2, help="examples per batch")
    options = finish_parsing(parser)
    if options.quick:
        width, height, frames, sequences, options.crop, options.samples = 160, 96, 6, 1, 32, 2
    else:
        width, height, frames, sequences, options.crop, options.samples = 1280, 720, 24, 2, 128, 8
    scratch = tempfile.mkdtemp(prefix="bench_data_")
    try:
        root = generate(options.data_dir or scratch, width, height, frames, sequences)
        rows = run(options, root, scratch)
        worker = one_worker(options, root, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarise(rows, width * height * 3, 5)
    document = {"bench": "data", "machine": machine(torch.device("cpu")),
                "config": {"width": width, "height": height, "frames_per_sequence": frames, "sequences": sequences,
                           "sequence_length": 5, "crop": options.crop, "samples_per_example": options.samples,
                           "batch_size": options.batch_size, "repeats": options.repeats, "warmup": options.warmup},
                "rows": rows, "summary": summary, "one_worker": worker}
    emit(document, options.json)
    table = []
    for entry in summary:
        table.append([entry["workers"]] + [
            f"{entry[f'{name}_crops_per_s']:.1f} ({entry[f'{name}_steady_crops_per_s']:.1f})"
            for name in ("original", "decode", "cache_cold", "cache_warm")] + [
            f"{entry['speedup_cache_cold']:.2f}x ({entry['steady_speedup_cache_cold']:.2f}x)",
            f"{entry['speedup_cache_warm']:.2f}x ({entry['steady_speedup_cache_warm']:.2f}x)",
            f"{entry['cache_bytes'] / 2 ** 20:.1f} / {entry['original_cache_bytes'] / 2 ** 20:.1f} MiB"])
    if table:
        print("crops/s per epoch (in brackets: after the first batch, i.e. without starting the workers)")
        print_table(["workers", "original", "decode", "cache cold", "cache warm", "cold speed-up", "warm speed-up",
                     "cache / original's cache"], table)
    low, high = GPU_CROPS_PER_S
    print(f"one worker (one thread, in-process; rates per CPU second), {worker['examples']} examples of "
          f"{options.samples} crops, {worker['frames_read_per_epoch']} frames read per epoch; "
          f"one GPU: {low:.0f}-{high:.0f} crops/s")
    print_table(["one worker", "crops/s", "frames/s", "epoch CPU s", "epoch wall s (crops/s)",
                 f"workers per GPU ({low:.0f}-{high:.0f} crops/s)"],
                [[name, f"{worker[f'{name}_crops_per_s']:.1f}", f"{worker[f'{name}_frames_per_s']:.1f}",
                  format_range(worker[f"{name}_epoch_cpu_s"]),
                  f"{format_range(worker[f'{name}_epoch_s'])} ({worker[f'{name}_wall_crops_per_s']:.1f})",
                  "-".join(str(n) for n in worker[f"{name}_workers_per_gpu"])]
                 for name in ("decode", "cache_cold", "cache_warm")])


if __name__ == "__main__":
    main()
