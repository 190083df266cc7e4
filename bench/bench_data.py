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

    .venv/bin/python bench/bench_data.py [--quick] [--workers 0 1 2] [--data_dir DIR] [--json FILE]
"""
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import torch
from common import base_parser, emit, finish_parsing, machine, measure, print_table, stats  # noqa: I100
from torch.utils.data import DataLoader

import runtime  # noqa: E402
from datasets.gopro_common import FrameStack  # noqa: E402
from datasets.gopro_nah import GoProNahTrain  # noqa: E402
from datasets.synthetic_gopro import make_gopro_nah  # noqa: E402

PIPELINES = ("original", "decode", "cache")


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
               cache_dir=cache_dir if pipeline == "cache" else None)


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
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarise(rows, width * height * 3, 5)
    document = {"bench": "data", "machine": machine(torch.device("cpu")),
                "config": {"width": width, "height": height, "frames_per_sequence": frames, "sequences": sequences,
                           "sequence_length": 5, "crop": options.crop, "samples_per_example": options.samples,
                           "batch_size": options.batch_size, "repeats": options.repeats, "warmup": options.warmup},
                "rows": rows, "summary": summary}
    emit(document, options.json)
    table = []
    for entry in summary:
        table.append([entry["workers"]] + [
            f"{entry[f'{name}_crops_per_s']:.1f} ({entry[f'{name}_steady_crops_per_s']:.1f})"
            for name in ("original", "decode", "cache_cold", "cache_warm")] + [
            f"{entry['speedup_cache_cold']:.2f}x ({entry['steady_speedup_cache_cold']:.2f}x)",
            f"{entry['speedup_cache_warm']:.2f}x ({entry['steady_speedup_cache_warm']:.2f}x)",
            f"{entry['cache_bytes'] / 2 ** 20:.1f} / {entry['original_cache_bytes'] / 2 ** 20:.1f} MiB"])
    print("crops/s per epoch (in brackets: after the first batch, i.e. without starting the workers)")
    print_table(["workers", "original", "decode", "cache cold", "cache warm", "cold speed-up", "warm speed-up",
                 "cache / original's cache"], table)

if __name__ == "__main__":
    main()
