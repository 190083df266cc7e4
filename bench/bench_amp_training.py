"""What bf16 autocast + channels-last costs in training quality, and gains in speed, on the demo recipe.

Runs scripts/demo.sh's main.py command (DBN on 32x32 crops of the demo data, validation on full frames
after every epoch) once per seed in float32 (the command as it is) and in bf16 (the same command plus
--amp=bf16 --channels_last=true), interleaved: fp32 seed 0, bf16 seed 0, fp32 seed 1, ... so that load
from other processes hits both alike. Each run has its own run folder under --work (kept there), from
which the script reads:
  final / best validation psnr   <run>/csv/<validation dataset>_evaluation_losses.csv (last row / max)
  input baseline psnr            <run>/csv/<validation dataset>_input_baseline.csv
  seconds per epoch              the TensorBoard events' wall times: lr/group0 (written as an epoch starts),
                                 train_epoch/* (end of its training pass) and valid/* (end of validation)
The check is the issue's: the bf16 mean final psnr lies within 2 standard deviations (ddof=1) of the
float32 mean. Epoch 1 carries one-off costs (first batches, allocator warm-up), so per-epoch times are
medians over epochs 2.. (epoch 1 alone when a run has a single epoch). --variants bf16_only cl_only time
--amp=bf16 and --channels_last=true on their own.

    .venv/bin/python bench/bench_amp_training.py --work /work/scratch/amp_runs --json amp_training.json
    .venv/bin/python bench/bench_amp_training.py --epochs 2 --seeds 0 --variants fp32 bf16 bf16_only cl_only
"""
import glob
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import torch
from common import REPO, base_parser, emit, machine, print_table  # noqa: I100

from utils.records import read_csv_rows  # noqa: E402

DEMO = os.path.join(REPO, "scripts", "demo.sh")
DEMO_EPOCHS = 16
# The extra flags of each precision variant on top of the demo's command.
VARIANTS: Dict[str, List[str]] = {
    "fp32": [],
    "bf16": ["--amp=bf16", "--channels_last=true"],
    "bf16_only": ["--amp=bf16"],
    "cl_only": ["--channels_last=true"],
}


def demo_command(data: str, epochs: int, examples: int, seed: int, save: str) -> List[str]:
    """scripts/demo.sh's main.py arguments with its shell variables filled in and --seed replaced."""
    with open(DEMO) as handle:
        text = handle.read()
    match = re.search(r'"\$PYTHON" main\.py (.*?[^\\])\n', text, flags=re.S)
    if match is None:
        raise SystemExit(f"{DEMO}: no '\"$PYTHON\" main.py ...' command found")
    # The demo's own precision flags (bf16 where the CPU has it): each variant here sets its precision itself.
    command = match.group(1).replace("\\\n", " ").replace('"${PRECISION[@]}"', "")
    values = {"$((EPOCHS * 3 / 4))": str(epochs * 3 // 4), "$DATA": data, "$EPOCHS": str(epochs),
              "$EXAMPLES": str(examples), "$SAVE": save}
    for token, value in values.items():
        command = command.replace(f'"{token}"', shlex.quote(value)).replace(token, value)
    if "$" in command:
        raise SystemExit(f"{DEMO}: the main.py command uses a shell variable this script does not know: {command}")
    arguments = shlex.split(command)
    if "--seed=0" not in arguments:
        raise SystemExit(f"{DEMO}: the main.py command no longer sets --seed=0")
    return ["main.py"] + [f"--seed={seed}" if a == "--seed=0" else a for a in arguments]


def event_times(folder: str) -> Dict[str, Dict[int, float]]:
    """{tag: {epoch: wall time}} of the run's TensorBoard scalars lr/group0, train_epoch/total_loss, valid/psnr."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    times: Dict[str, Dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(folder, "tb", "events.out.tfevents.*"))):
        accumulator = EventAccumulator(path, size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in ("lr/group0", "train_epoch/total_loss", "valid/psnr"):
            if tag in accumulator.Tags()["scalars"]:
                times.setdefault(tag, {}).update({e.step: e.wall_time for e in accumulator.Scalars(tag)})
    return times


def epoch_seconds(folder: str) -> Dict[str, Any]:
    """Per-epoch training and validation seconds from the event wall times; medians over epochs 2.. ."""
    times = event_times(folder)
    missing = [t for t in ("lr/group0", "train_epoch/total_loss", "valid/psnr") if not times.get(t)]
    if missing:
        raise SystemExit(f"{folder}/tb: no TensorBoard scalars {missing} (needed for the epoch times)")
    epochs = sorted(set(times["lr/group0"]) & set(times["train_epoch/total_loss"]) & set(times["valid/psnr"]))
    train = [times["train_epoch/total_loss"][e] - times["lr/group0"][e] for e in epochs]
    valid = [times["valid/psnr"][e] - times["train_epoch/total_loss"][e] for e in epochs]
    later = slice(1, None) if len(epochs) > 1 else slice(None)
    return {"epochs": epochs, "train_s": train, "valid_s": valid,
            "train_epoch_s": statistics.median(train[later]), "valid_epoch_s": statistics.median(valid[later])}


def read_psnr(folder: str) -> Dict[str, float]:
    """Final and best validation psnr and the input baseline's, from the run folder's CSV records."""
    found = glob.glob(os.path.join(folder, "csv", "*_evaluation_losses.csv"))
    if len(found) != 1:
        raise SystemExit(f"{folder}/csv: expected one *_evaluation_losses.csv, found {len(found)}")
    rows = read_csv_rows(found[0])
    if not rows:
        raise SystemExit(f"{found[0]}: no validation records")
    psnr = [float(row["psnr"]) for row in rows]
    baseline = read_csv_rows(found[0].replace("_evaluation_losses.csv", "_input_baseline.csv"))
    return {"final_psnr": psnr[-1], "best_psnr": max(psnr), "psnr_per_epoch": psnr,
            "input_psnr": float(baseline[0]["psnr"]) if baseline else math.nan}


def train(variant: str, seed: int, options: Any, data: str) -> Dict[str, Any]:
    """One demo run of a variant and seed in its own run folder; its psnr and times."""
    save = os.path.join(options.work, f"{variant}-seed{seed}")
    if os.path.exists(save):
        raise SystemExit(f"--work: {save} exists already (use a fresh --work folder)")
    command = [sys.executable] + demo_command(data, options.epochs, options.examples, seed, save) + VARIANTS[variant]
    # As demo.sh runs it: one OpenMP thread per core unless the caller chose otherwise.
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{variant} seed {seed}: main.py failed ({completed.returncode}), see {save}/logbook.txt:\n"
                         f"{completed.stderr[-3000:]}")
    return {"variant": variant, "seed": seed, "folder": save, "run_s": seconds, **read_psnr(save),
            **epoch_seconds(save)}


def summarize(runs: Sequence[Dict[str, Any]], variant: str) -> Dict[str, Any]:
    """Mean and standard deviation (ddof=1; NaN for one seed) of a variant's psnr and its median epoch times."""
    mine = [r for r in runs if r["variant"] == variant]

    def spread(key: str) -> Dict[str, float]:
        values = [r[key] for r in mine]
        return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else math.nan}

    return {"variant": variant, "seeds": len(mine), "final_psnr": spread("final_psnr"),
            "best_psnr": spread("best_psnr"), "run_s": spread("run_s"),
            "train_epoch_s": statistics.median(r["train_epoch_s"] for r in mine),
            "valid_epoch_s": statistics.median(r["valid_epoch_s"] for r in mine)}


def main() -> None:
    """Run the interleaved demo trainings and print/emit the table and the 2-std check."""
    parser = base_parser(__doc__.splitlines()[0], default_repeats=1, default_warmup=0)
    parser.add_argument("--epochs", type=int, default=None, help=f"demo epochs (default {DEMO_EPOCHS}, quick 2)")
    parser.add_argument("--examples", type=int, default=None,
                        help="training examples per epoch (default -1: all, as the demo; quick 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2, quick 0)")
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16"], choices=sorted(VARIANTS),
                        help="fp32 (the demo), bf16 (--amp=bf16 --channels_last=true), bf16_only, cl_only")
    parser.add_argument("--work", default=None, help="folder for the run folders (default: a new temporary one)")
    parser.add_argument("--data", default=None,
                        help="demo data folder (scripts/make_demo_data.sh's OUT; default <repo>/demo_data, "
                             "generated there if missing)")
    parser.set_defaults(device="cpu")
    options = parser.parse_args()
    if options.device != "cpu":
        parser.error("--device: the demo recipe trains on the CPU (--cuda=false); only cpu is supported")
    options.epochs = options.epochs or (2 if options.quick else DEMO_EPOCHS)
    options.examples = options.examples or (4 if options.quick else -1)
    options.seeds = options.seeds if options.seeds is not None else ([0] if options.quick else [0, 1, 2])
    if options.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {options.epochs}")
    options.work = options.work or tempfile.mkdtemp(prefix="bench_amp_training-")
    os.makedirs(options.work, exist_ok=True)
    data = options.data or os.path.join(REPO, "demo_data")
    if not os.path.isdir(os.path.join(data, "GOPRO_Large")):
        subprocess.run(["bash", os.path.join(REPO, "scripts", "make_demo_data.sh"), data], check=True,
                       stdout=subprocess.DEVNULL)

    runs = []
    for seed in options.seeds:
        for variant in options.variants:
            runs.append(train(variant, seed, options, data))
            run = runs[-1]
            print(f"{variant} seed {seed}: final psnr {run['final_psnr']:.3f}, {run['run_s']:.0f} s", flush=True)
    summary = [summarize(runs, v) for v in options.variants]

    print_table(["precision", "seed", "final psnr", "best psnr", "run s", "train s/epoch", "valid s/epoch"],
                [[r["variant"], r["seed"], f"{r['final_psnr']:.3f}", f"{r['best_psnr']:.3f}", f"{r['run_s']:.1f}",
                  f"{r['train_epoch_s']:.2f}", f"{r['valid_epoch_s']:.2f}"] for r in runs])
    print()
    print_table(["precision", "seeds", "final psnr mean ± std", "best psnr mean ± std", "train s/epoch",
                 "valid s/epoch", "run s mean"],
                [[s["variant"], s["seeds"], f"{s['final_psnr']['mean']:.3f} ± {s['final_psnr']['std']:.3f}",
                  f"{s['best_psnr']['mean']:.3f} ± {s['best_psnr']['std']:.3f}", f"{s['train_epoch_s']:.2f}",
                  f"{s['valid_epoch_s']:.2f}", f"{s['run_s']['mean']:.1f}"] for s in summary])
    print(f"input baseline psnr: {runs[0]['input_psnr']:.3f}")
    document: Dict[str, Any] = {"benchmark": "amp_training", "machine": machine(torch.device("cpu")),
                                "config": {"epochs": options.epochs, "examples": options.examples,
                                           "seeds": options.seeds, "variants": options.variants,
                                           "work": options.work, "data": data,
                                           "command": demo_command(data, options.epochs, options.examples, 0,
                                                                   "SAVE")},
                                "runs": runs, "summary": summary}
    by_variant = {s["variant"]: s for s in summary}
    if "fp32" in by_variant:
        reference = by_variant["fp32"]
        document["ratios_vs_fp32"] = {
            s["variant"]: {"train_epoch": s["train_epoch_s"] / reference["train_epoch_s"],
                           "valid_epoch": s["valid_epoch_s"] / reference["valid_epoch_s"]}
            for s in summary if s["variant"] != "fp32"}
        for variant, ratio in document["ratios_vs_fp32"].items():
            print(f"{variant}/fp32 seconds per epoch: training {ratio['train_epoch']:.3f}, "
                  f"validation {ratio['valid_epoch']:.3f}")
    if "fp32" in by_variant and "bf16" in by_variant:
        difference = by_variant["bf16"]["final_psnr"]["mean"] - by_variant["fp32"]["final_psnr"]["mean"]
        two_std = 2 * by_variant["fp32"]["final_psnr"]["std"]
        within = bool(abs(difference) <= two_std)  # False when one seed leaves the std undefined (NaN)
        document["check"] = {"difference_db": difference, "two_std_db": two_std, "within": within}
        print(f"bf16 mean within 2 std of float32 mean: {'yes' if within else 'no'} "
              f"(difference {difference:+.3f} dB, 2 std = {two_std:.3f} dB)")
    emit(document, options.json)


if __name__ == "__main__":
    main()
